export * from './domain/index.js';
export { buildApp, type AppOptions } from './http/app.js';
