export * from './domain/index.js';
export { buildApp, type AppOptions } from './http/app.js';
export * from './client/index.js';
