import { afterAll, describe } from 'vitest';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';
import { runStoreContract } from './state-store.contract.js';

const schemas: string[] = [];
afterAll(() => dropSchemas(schemas));

describe('postgres store (real PostgreSQL)', () => {
  let schema = '';
  runStoreContract({
    open: () => {
      schema = freshSchema('contract');
      schemas.push(schema);
      return new PostgresStore({ connectionString: PG_URL, schema });
    },
    reopen: () => new PostgresStore({ connectionString: PG_URL, schema })
  });
});
