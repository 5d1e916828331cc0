#!/usr/bin/env python3
"""api_tokens.py -- bearer tokens and the server's token cache (api/auth.c).

The server keeps, for tokens that authenticated, a fixed table (1,024
slots) from a keyed BLAKE2b tag of the token to its HMAC, so a repeat
request skips the HMAC; the row is still looked up on every request.
This test checks that the cache changes nothing a client can see:

  - a cached token stops working on the very next request after another
    process revokes it (`ravand principal revoke`), after its principal is
    disabled, and works again once enabled; a token issued after the
    revocation works;
  - an expired token is refused, every time;
  - more valid tokens than the cache has slots (1,100, so slots are shared
    and entries are evicted): every one is accepted, twice round;
  - 1,500 unknown tokens of the right shape while those 1,100 occupy about
    two thirds of the slots, so hundreds of them fall in a slot holding
    another token: every one is refused (401), and they evict nothing --
    a near miss (one character changed) too;
  - the audit rows' hash chain, recomputed here independently of the
    server's code (SHA-256 over the previous hash and the row's fields),
    matches every stored hash, and `ravand audit verify` agrees.

usage: api_tokens.py PATH/TO/ravand
"""
import base64
import hashlib
import hmac
import http.client
import os
import secrets
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import serve_main  # noqa: E402

N_VALID = 1100          # > RV_TOKEN_CACHE (1,024)
N_WRONG = 1500


def new_token():
    return 'rvt_' + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')


class Client:
    """One keep-alive connection: thousands of requests stay quick."""

    def __init__(self, s):
        self.s = s
        self.c = s.conn()

    def status(self, token, path='/v1/me'):
        for attempt in range(2):
            try:
                self.c.request('GET', path, headers={'Authorization': 'Bearer ' + token})
                r = self.c.getresponse()
                r.read()
                if r.getheader('Connection', '').lower() == 'close':
                    self.c.close()
                    self.c = self.s.conn()
                return r.status
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = self.s.conn()
                if attempt:
                    raise
        return None

    def close(self):
        self.c.close()


def audit_chain_ok(db):
    """Recompute every audit row's hash as docs/api.md describes it."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT at, request_id, principal, role, scope, address, method, path,"
                       " action, object, outcome, detail, hash FROM audit ORDER BY id").fetchall()
    con.close()
    prev, bad = b'', 0
    for r in rows:
        at, outcome, stored = r[0], r[10], r[12]
        fields = [r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[11]]
        h = hashlib.sha256(prev + b'\x1e%d\x1f%d' % (at, outcome))
        for f in fields:
            h.update(b'\x1f')
            h.update(f.encode('utf-8') if f is not None else b'\x00')
        if h.hexdigest() != stored:
            bad += 1
        prev = stored.encode()
    return len(rows), bad


def run(t, s):
    clerk = s.principal('clerk', 'branch', branch='B1')
    s.principal('op', 'operator')
    s.principal('staff', 'committee')

    # Tokens issued directly in the database, as `principal token` stores
    # them: HMAC-SHA-256(pepper, token). The pepper is next to the database.
    with open(s.db + '.pepper', 'rb') as f:
        pepper = f.read()
    many = [new_token() for _ in range(N_VALID)]
    con = sqlite3.connect(s.db, timeout=30)
    pid = con.execute("SELECT id FROM principals WHERE name='staff'").fetchone()[0]
    con.executemany("INSERT INTO api_tokens(principal_id, hash, prefix, created) VALUES(?,?,?,0)",
                    [(pid, hmac.new(pepper, tok.encode(), hashlib.sha256).digest(), tok[:12])
                     for tok in many])
    con.commit()
    con.close()
    # expired: issued "in 2020" for an hour
    expired = s.cli('--now', '2020-01-01T00:00:00Z', 'principal', 'token', 'op',
                    '--expires', 'PT1H').stdout.strip()

    s.start('--rate', '-1', '--rate-addr', '-1', '--max-auth-failures', '1000000')
    c = Client(s)

    # revocation by another process, after the token is cached
    t.eq([c.status(clerk) for _ in range(3)], [200, 200, 200], 'a token works, repeatedly (cached)')
    s.cli('principal', 'revoke', 'clerk')
    t.eq(c.status(clerk), 401, 'revoked by `ravand principal revoke` (another process): refused next request')
    t.eq(c.status(clerk), 401, 'and stays refused')
    clerk2 = s.cli('principal', 'token', 'clerk').stdout.strip()
    t.eq([c.status(clerk2), c.status(clerk2)], [200, 200], 'a token issued after the revocation works')
    t.eq(c.status(clerk), 401, 'the revoked token still does not')

    # disabled principal
    s.cli('principal', 'disable', 'clerk')
    t.eq(c.status(clerk2), 401, 'principal disabled: its cached token is refused next request')
    s.cli('principal', 'enable', 'clerk')
    t.eq(c.status(clerk2), 200, 'enabled again: accepted')

    # expiry
    t.eq([c.status(expired) for _ in range(3)], [401, 401, 401], 'an expired token is refused, every time')
    t.eq(c.status(s.tokens['op']), 200, "the same principal's unexpired token works")

    # more tokens than slots, twice round
    first = [c.status(tok) for tok in many]
    t.eq(first.count(200), N_VALID, '%d valid tokens (more than the 1,024 slots): all accepted' % N_VALID)
    second = [c.status(tok) for tok in many]
    t.eq(second.count(200), N_VALID, 'all accepted again, after evicting one another')

    # unknown tokens, many sharing a slot with a cached token
    wrong = [new_token() for _ in range(N_WRONG)]
    got = [c.status(tok) for tok in wrong]
    t.eq(got.count(401), N_WRONG, '%d unknown tokens while ~2/3 of the slots are full: all refused' % N_WRONG)
    near = many[0][:-1] + ('A' if many[0][-1] != 'A' else 'B')
    t.eq(c.status(near), 401, 'a near miss (last character changed) is refused')
    t.eq(c.status(many[0] + 'A'), 401, 'a token with a character appended is refused')
    t.eq(c.status(many[0][:-1]), 401, 'a token cut short is refused')
    third = [c.status(tok) for tok in many]
    t.eq(third.count(200), N_VALID, 'the valid tokens still work after the unknown ones')
    t.eq(c.status(clerk), 401, 'the revoked token is still refused at the end')
    c.close()

    # nothing new on disk: the token table holds what it held
    con = sqlite3.connect(s.db, timeout=30)
    n_tok = con.execute("SELECT count(*) FROM api_tokens").fetchone()[0]
    con.close()
    t.eq(n_tok, N_VALID + 5, 'no token rows were added by the server')

    n, bad = audit_chain_ok(s.db)
    t.ok(n > 0 and bad == 0, 'audit chain recomputed independently: %d rows, none broken' % n,
         '%d of %d rows do not chain' % (bad, n))
    v = s.cli('audit', 'verify', check=False)
    t.ok(v.returncode == 0 and 'intact' in v.stdout, '`ravand audit verify`: intact', v.stdout + v.stderr)


if __name__ == '__main__':
    sys.exit(serve_main(sys.argv[1], run))
