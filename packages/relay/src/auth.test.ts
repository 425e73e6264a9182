import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  bearerToken,
  compileScope,
  createAuthenticator,
  principalFromClaims,
  scopeAllows,
  signToken,
} from './auth';

const secret = 'auth-test-secret-auth-test-secret!!';

describe('bucket scopes', () => {
  it('matches globs where * is any run of characters, anchored at both ends', () => {
    expect(scopeAllows(['todo:*'], 'todo:1')).toBe(true);
    expect(scopeAllows(['todo:*'], 'todo:')).toBe(true);
    expect(scopeAllows(['todo:*'], 'todos')).toBe(false);
    expect(scopeAllows(['todo:*'], 'x-todo:1')).toBe(false);
    expect(scopeAllows(['user/*/notes'], 'user/alice/notes')).toBe(true);
    expect(scopeAllows(['user/*/notes'], 'user/alice/notes2')).toBe(false);
    expect(scopeAllows(['a.b'], 'aXb')).toBe(false); // dots are literal
    expect(scopeAllows(['*'], 'anything:at/all')).toBe(true);
    expect(scopeAllows([], 'x')).toBe(false);
    expect(compileScope([])).toBeNull();
  });

  it('denies by default: no claim, no access', () => {
    const p = principalFromClaims({ sub: 'r1', exp: 2e9 });
    expect(p.canRead('a')).toBe(false);
    expect(p.canWrite('a')).toBe(false);
  });

  it('rejects tokens without a replicaId subject, without exp, or with malformed scopes', () => {
    expect(() => principalFromClaims({ sub: 'not a replica id', exp: 2e9 })).toThrow(/subject/);
    expect(() => principalFromClaims({ sub: 'r1' })).toThrow(/expiry/);
    expect(() => principalFromClaims({ sub: 'r1', exp: 2e9, mittsync: { read: 'todo:*' } })).toThrow(
      /mittsync.read/,
    );
    expect(() => principalFromClaims({ sub: 'r1', exp: 2e9, mittsync: { read: ['(.*)'] } })).toThrow(
      /mittsync.read/,
    );
  });
});

describe('createAuthenticator', () => {
  it('verifies HS256 tokens into principals bound to the subject', async () => {
    const auth = createAuthenticator({ secret });
    const p = await auth.verify(await signToken(secret, { sub: 'r1', read: ['*'], write: ['todo:*'] }));
    expect(p.replicaId).toBe('r1');
    expect(p.canRead('x')).toBe(true);
    expect(p.canWrite('todo:1')).toBe(true);
    expect(p.canWrite('x')).toBe(false);
    expect(p.expiresAt).toBeGreaterThan(Date.now());
  });

  it('rejects other secrets, expired tokens, and tokens of a wrong audience or issuer', async () => {
    const auth = createAuthenticator({ secret, audience: 'mittsync', issuer: 'https://auth.example' });
    const other = await signToken('another-secret-another-secret-another', {
      sub: 'r1',
      audience: 'mittsync',
    });
    await expect(auth.verify(other)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const expired = await signToken(secret, {
      sub: 'r1',
      ttlS: -60,
      audience: 'mittsync',
      issuer: 'https://auth.example',
    });
    await expect(auth.verify(expired)).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
    const wrongAud = await signToken(secret, {
      sub: 'r1',
      audience: 'other',
      issuer: 'https://auth.example',
    });
    await expect(auth.verify(wrongAud)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const noIss = await signToken(secret, { sub: 'r1', audience: 'mittsync' });
    await expect(auth.verify(noIss)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const ok = await signToken(secret, { sub: 'r1', audience: 'mittsync', issuer: 'https://auth.example' });
    expect((await auth.verify(ok)).replicaId).toBe('r1');
  });

  it('verifies against a JWKS with pinned algorithms', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const auth = createAuthenticator({ jwks: { keys: [jwk] } });
    const token = await new SignJWT({ mittsync: { read: ['*'], write: [] } })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('r2')
      .setExpirationTime('1h')
      .sign(privateKey);
    expect((await auth.verify(token)).replicaId).toBe('r2');
    // An HS256 token can never pass a JWKS verifier (no algorithm confusion).
    await expect(auth.verify(await signToken(secret, { sub: 'r2' }))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    const pinned = createAuthenticator({ jwks: { keys: [jwk] }, algorithms: ['RS256'] });
    await expect(pinned.verify(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('refuses weak setups: short secrets, both or neither key source, alg none', () => {
    expect(() => createAuthenticator({ secret: 'short' })).toThrow(/32 bytes/);
    expect(() => createAuthenticator({})).toThrow(/exactly one/);
    expect(() => createAuthenticator({ secret, jwks: { keys: [] } })).toThrow(/exactly one/);
    expect(() => createAuthenticator({ secret, algorithms: ['none'] })).toThrow(/none/);
  });

  it('reads bearer tokens from Authorization headers', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer   x ')).toBe('x');
    expect(bearerToken('Basic Zm9v')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});
