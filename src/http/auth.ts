/**
 * Bearer tokens with scopes (SPEC section 8). Tokens are kept as SHA-256 digests and compared in
 * constant time; a token file may hold `sha256:<hex>` so it need not contain secrets.
 *
 * Scopes:
 * - `read`: every GET under /v1.
 * - `vmm`: create, change and decide for the VMs whose ids match the token's `vms` glob patterns
 *   (GET included); flush jobs of those VMs.
 * - `admin`: everything, including the quirk list.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

export const SCOPES = ['read', 'vmm', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

const TokenEntry = z
  .object({
    id: z.string().min(1).max(100).optional(),
    token: z.string().min(16, 'tokens must be at least 16 characters').max(512),
    scopes: z.array(z.enum(SCOPES)).min(1),
    vms: z.array(z.string().regex(/^[A-Za-z0-9*?._-]{1,64}$/)).optional()
  })
  .strict();

export const TokenFile = z.array(TokenEntry);

export interface Principal {
  /** Names the token in logs and the audit trail; never the token itself. */
  readonly id: string;
  readonly scopes: ReadonlySet<Scope>;
  readonly vms: readonly RegExp[];
}

interface Entry extends Principal {
  readonly digest: Buffer;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export class TokenTable {
  readonly #entries: Entry[];

  constructor(json: unknown) {
    const parsed = TokenFile.safeParse(json);
    if (!parsed.success) {
      throw new Error(`invalid token file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    this.#entries = parsed.data.map((e, i) => {
      const hashed = /^sha256:([0-9a-f]{64})$/i.exec(e.token);
      return {
        id: e.id ?? `token-${i + 1}`,
        scopes: new Set(e.scopes),
        vms: (e.vms ?? ['*']).map(glob),
        digest: hashed?.[1] === undefined ? digest(e.token) : Buffer.from(hashed[1], 'hex')
      };
    });
  }

  get size(): number {
    return this.#entries.length;
  }

  /** The principal of a presented token, or undefined. Compares against every entry in constant time. */
  authenticate(token: string): Principal | undefined {
    const presented = digest(token);
    let found: Entry | undefined;
    for (const e of this.#entries) {
      if (timingSafeEqual(presented, e.digest) && found === undefined) found = e;
    }
    return found;
  }
}

/** May `principal` do something needing `scope` (for VM `vmId` when given)? */
export function allows(principal: Principal, scope: Scope, vmId?: string): boolean {
  if (principal.scopes.has('admin')) return true;
  if (scope === 'read' && principal.scopes.has('read')) return true;
  if ((scope === 'read' || scope === 'vmm') && principal.scopes.has('vmm') && vmId !== undefined) {
    return principal.vms.some((re) => re.test(vmId));
  }
  return false;
}
