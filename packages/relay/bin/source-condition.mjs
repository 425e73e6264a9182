// A module resolution hook (module.register) adding the "source" export condition: the
// workspace's @mittsync/* packages then resolve to their TypeScript sources, not to dist/.

/** @type {import('node:module').ResolveHook} */
export async function resolve(specifier, context, nextResolve) {
  if (context.conditions.includes('source')) return nextResolve(specifier, context);
  return nextResolve(specifier, { ...context, conditions: ['source', ...context.conditions] });
}
