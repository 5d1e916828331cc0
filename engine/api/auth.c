/*
** api/auth.c -- principals, bearer tokens, and `ravand principal`.
**
** A principal has one role and the scope that role needs: an applicant a
** national ID, branch staff a branch, association staff a county, an
** organisation user an organisation and agreement. Staff may carry extra
** candidate groups (--groups) next to their role's own group.
**
** Tokens are "rvt_" + 43 base64url characters (256 random bits from
** libsodium). Only HMAC-SHA-256(pepper, token) is stored; the pepper is
** 32 random bytes in a file next to the database (mode 0600), so a copy
** of the database alone does not let anyone check guesses offline. The
** stored hash is compared with sodium_memcmp (constant time). A token is
** shown once, when it is issued, and never again.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "api/api_int.h"
#include "core/fatext.h"
#include "core/mem.h"
#include "cal/cal.h"

#define TOKEN_PREFIX "rvt_"
#define TOKEN_RAW    32
#define TOKEN_LEN    (4 + 43)

static const struct { const char *name, *group; } roles[] = {
  { NULL, NULL },
#define X(uc, name, group) { name, group },
  RV_ROLE_MAP(X)
#undef X
};

const char *rv__role_name(rv_role r){
  return r > RV_ROLE_NONE && r < RV_ROLE_COUNT ? roles[r].name : "none";
}
const char *rv__role_group(rv_role r){
  return r > RV_ROLE_NONE && r < RV_ROLE_COUNT ? roles[r].group : NULL;
}
rv_role rv__role_parse(const char *s){
  for (int i = 1; s && i < RV_ROLE_COUNT; i++) if (strcmp(roles[i].name, s) == 0) return (rv_role)i;
  return RV_ROLE_NONE;
}

const char *rv__principal_scope(const rv_principal *p, char *buf, size_t n){
  switch (p->role) {
  case RV_ROLE_APPLICANT:    snprintf(buf, n, "national_id=%s", p->national_id); break;
  case RV_ROLE_BRANCH:       snprintf(buf, n, "branch=%s", p->branch); break;
  case RV_ROLE_ASSOCIATION:  snprintf(buf, n, "county=%s", p->county); break;
  case RV_ROLE_ORGANISATION: snprintf(buf, n, "organisation=%s;agreement=%s", p->organisation, p->agreement); break;
  default:                   snprintf(buf, n, "-"); break;
  }
  return buf;
}

/*--- Pepper and hashing -------------------------------------------------------*/

rv_status rv__pepper_load(const char *path, bool create, unsigned char key[32], rv_err *err){
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0 && errno == ENOENT && create) {
    unsigned char k[32];
    randombytes_buf(k, sizeof k);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return rv_fail(err, RV_IO, "cannot create the token pepper '%s': %s", path, strerror(errno));
    n = write(fd, k, sizeof k);
    if (n != (ssize_t)sizeof k || fsync(fd) != 0) {
      close(fd);
      unlink(path);
      return rv_fail(err, RV_IO, "cannot write the token pepper '%s'", path);
    }
    close(fd);
    sodium_memzero(k, sizeof k);
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return rv_fail(err, RV_IO, "cannot read the token pepper '%s': %s", path, strerror(errno));
  n = read(fd, key, 32);
  close(fd);
  if (n != 32) return rv_fail(err, RV_IO, "the token pepper '%s' is not 32 bytes", path);
  return RV_OK;
}

static void token_hash(const unsigned char key[32], const char *token, unsigned char out[32]){
  crypto_auth_hmacsha256(out, (const unsigned char *)token, strlen(token), key);
}

/*--- Token cache ----------------------------------------------------------------
** HMAC-SHA-256 of the token was half of a request's token check (~16 k
** instructions of ~30 k). A token that authenticated recently skips it: a
** fixed table of TOKEN_CACHE (1,024) slots, direct-mapped, maps a tag of the
** token -- keyed BLAKE2b-256 over (pepper, token) with a key drawn at random
** when the process first needs it -- to the token's HMAC. The tag is ~2 k
** instructions and is compared in full, in constant time; its first bits
** pick the slot. So:
**  - nothing stored is the token or lets anyone recover it, and nothing
**    is written to disk (the key and the table live and die with the
**    process);
**  - the cache only replaces a computation: the row is still looked up by
**    the HMAC on every request, so revocation, expiry and a disabled
**    principal take effect on the next request, whichever process made
**    the change;
**  - only a token that authenticated is entered, so unknown tokens (a
**    scanner) never evict a good one; a token refused later is dropped;
**  - a different token in the same slot has a different tag: it misses,
**    pays the HMAC, and is judged by the database like any other.
** The server is one thread (the event loop); the CLI checks no tokens. */

#define TOKEN_CACHE 1024      /* slots; 64 KiB */

typedef struct tc_slot {
  unsigned char tag[crypto_generichash_BYTES];
  unsigned char hmac[32];
  bool          used;
} tc_slot;

static tc_slot       tc[TOKEN_CACHE];
static unsigned char tc_key[crypto_generichash_KEYBYTES];
static bool          tc_ready;

static unsigned tc_tag(const unsigned char pepper[32], const char *token,
                       unsigned char tag[crypto_generichash_BYTES]){
  crypto_generichash_state g;
  if (!tc_ready) {
    randombytes_buf(tc_key, sizeof tc_key);
    tc_ready = true;
  }
  crypto_generichash_init(&g, tc_key, sizeof tc_key, crypto_generichash_BYTES);
  crypto_generichash_update(&g, pepper, 32);
  crypto_generichash_update(&g, (const unsigned char *)token, strlen(token));
  crypto_generichash_final(&g, tag, crypto_generichash_BYTES);
  sodium_memzero(&g, sizeof g);         /* its block buffer held the token */
  return ((unsigned)tag[0] | (unsigned)tag[1] << 8 | (unsigned)tag[2] << 16) % TOKEN_CACHE;
}

static bool token_shape_ok(const char *t){
  size_t n = strlen(t);
  if (n != TOKEN_LEN || strncmp(t, TOKEN_PREFIX, 4) != 0) return false;
  for (size_t i = 4; i < n; i++) {
    char c = t[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_')) return false;
  }
  return true;
}

/* Cut at cap - 1 bytes, like snprintf, without its format machinery
** (five of these per request). */
static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int i){
  const char *v = (const char *)sqlite3_column_text(s, i);
  size_t n = v ? strnlen(v, cap - 1) : 0;
  if (n) memcpy(dst, v, n);
  dst[n] = 0;
}

static void fill_groups(rv_principal *p, const char *extra){
  const char *g = rv__role_group(p->role);
  p->n_groups = 0;
  if (g) snprintf(p->groups[p->n_groups++], RV_SCOPE_LEN + 1, "%s", g);
  while (extra && *extra && p->n_groups < RV_MAX_GROUPS) {
    const char *c = strchr(extra, ',');
    size_t n = c ? (size_t)(c - extra) : strlen(extra);
    if (n > 0 && n <= RV_SCOPE_LEN) {
      memcpy(p->groups[p->n_groups], extra, n);
      p->groups[p->n_groups][n] = 0;
      p->n_groups++;
    }
    extra = c ? c + 1 : NULL;
  }
}

#define SQL_AUTH \
  "SELECT t.hash, t.expires, t.revoked, p.id, p.name, p.role, p.national_id, p.branch," \
  " p.county, p.organisation, p.agreement, p.groups, p.disabled" \
  " FROM api_tokens t JOIN principals p ON p.id=t.principal_id WHERE t.hash=?"

rv_status rv__authenticate(rv_store *st, const unsigned char key[32], const char *token,
                           int64_t now, rv_principal *p){
  unsigned char h[32], tag[crypto_generichash_BYTES];
  unsigned slot;
  bool hit;
  sqlite3_stmt *s;
  rv_status rc = RV_DENIED;

  memset(p, 0, sizeof *p);
  if (token == NULL || !token_shape_ok(token)) return RV_DENIED;
  slot = tc_tag(key, token, tag);
  hit = tc[slot].used && sodium_memcmp(tc[slot].tag, tag, sizeof tag) == 0;
  if (hit) memcpy(h, tc[slot].hmac, sizeof h);
  else token_hash(key, token, h);
  s = rv_store_stmt(st, SQL_AUTH);
  sqlite3_bind_blob(s, 1, h, sizeof h, SQLITE_TRANSIENT);
  if (sqlite3_step(s) == SQLITE_ROW) {
    const void *stored = sqlite3_column_blob(s, 0);
    bool same = sqlite3_column_bytes(s, 0) == (int)sizeof h && stored &&
                sodium_memcmp(stored, h, sizeof h) == 0;
    bool expired = sqlite3_column_type(s, 1) != SQLITE_NULL && now >= sqlite3_column_int64(s, 1);
    bool revoked = sqlite3_column_type(s, 2) != SQLITE_NULL;
    bool disabled = sqlite3_column_type(s, 12) != SQLITE_NULL;
    rv_role role = rv__role_parse((const char *)sqlite3_column_text(s, 5));
    if (same && !expired && !revoked && !disabled && role != RV_ROLE_NONE) {
      p->id = sqlite3_column_int64(s, 3);
      p->role = role;
      copy_col(p->name, sizeof p->name, s, 4);
      copy_col(p->national_id, sizeof p->national_id, s, 6);
      copy_col(p->branch, sizeof p->branch, s, 7);   /* stored in normal form (migration 10) */
      copy_col(p->county, sizeof p->county, s, 8);
      copy_col(p->organisation, sizeof p->organisation, s, 9);
      copy_col(p->agreement, sizeof p->agreement, s, 10);
      fill_groups(p, (const char *)sqlite3_column_text(s, 11));
      rc = RV_OK;
    }
  }
  sqlite3_reset(s);
  if (rc == RV_OK && !hit) {            /* enter it (it may replace another token) */
    memcpy(tc[slot].tag, tag, sizeof tag);
    memcpy(tc[slot].hmac, h, sizeof h);
    tc[slot].used = true;
  } else if (rc != RV_OK && hit) {      /* revoked, expired or disabled: drop it */
    sodium_memzero(&tc[slot], sizeof tc[slot]);
  }
  sodium_memzero(h, sizeof h);
  sodium_memzero(tag, sizeof tag);
  return rc;
}

/*--- `ravand principal` ---------------------------------------------------------*/

typedef struct cli {
  int    argc;
  char **argv;
  bool   bad;
} cli;

static const char *opt(cli *c, const char *name){
  for (int i = 0; i < c->argc; i++) {
    if (strcmp(c->argv[i], name) != 0) continue;
    if (i + 1 >= c->argc) { fprintf(stderr, "ravand: %s needs a value\n", name); c->bad = true; return NULL; }
    {
      const char *v = c->argv[i + 1];
      memmove(&c->argv[i], &c->argv[i + 2], sizeof(char *) * (size_t)(c->argc - i - 2));
      c->argc -= 2;
      return v;
    }
  }
  return NULL;
}

static bool no_opts_left(cli *c){
  for (int i = 0; i < c->argc; i++)
    if (strncmp(c->argv[i], "--", 2) == 0) {
      fprintf(stderr, "ravand: unknown option '%s'\n", c->argv[i]);
      return false;
    }
  return !c->bad;
}

static int usage(void){
  fprintf(stderr,
    "usage: ravand principal add NAME --role ROLE [--national-id N] [--branch B] [--county C]\n"
    "                                [--organisation O --agreement A] [--groups G1,G2]\n"
    "       ravand principal list\n"
    "       ravand principal token NAME [--expires DURATION]   (printed once)\n"
    "       ravand principal tokens NAME\n"
    "       ravand principal revoke NAME [--token ID]\n"
    "       ravand principal disable|enable NAME\n"
    "roles: applicant, branch, association, committee, it_admin, organisation, operator, analyst\n");
  return 2;
}

static void cli_audit(rv_engine *e, const char *action, const char *object, const char *detail){
  char who[96];
  const char *u = getenv("USER");
  rv_audit_rec a = {0};
  snprintf(who, sizeof who, "cli:%s", u && *u ? u : "unknown");
  a.at = rv_clock_now(rv_engine_clock(e));
  a.principal = who;
  a.role = "cli";
  a.address = "local";
  a.action = action;
  a.object = object;
  a.detail = detail;
  a.outcome = 200;
  rv__audit_write(rv_engine_store(e), &a, NULL);
}

static int64_t principal_id(rv_store *st, const char *name){
  sqlite3_stmt *s = rv_store_stmt(st, "SELECT id FROM principals WHERE name=?");
  int64_t id = 0;
  rv_store_bind(s, "t", name);
  if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  return id;
}

static bool valid_groups(const char *g){
  char buf[RV_SCOPE_LEN + 1];
  int n = 0;
  while (g && *g) {
    const char *c = strchr(g, ',');
    size_t len = c ? (size_t)(c - g) : strlen(g);
    if (len == 0 || len > RV_SCOPE_LEN || ++n > RV_MAX_GROUPS - 1) return false;
    memcpy(buf, g, len);
    buf[len] = 0;
    if (!rv__valid_ident(buf, RV_SCOPE_LEN)) return false;
    g = c ? c + 1 : NULL;
  }
  return true;
}

/* A scope value is stored in normal form (core/fatext.h), the form the
** runtime writes the tasks' branch and county in, so that the two compare
** equal whatever keyboard either was typed on. *v then points at buf. */
static bool scope_arg(const char *opt_name, const char **v, char *buf){
  rv_err err;
  if (*v == NULL) return true;
  if (rv_fa_scope(*v, false, buf, RV_SCOPE_BYTES + 1, &err) != RV_OK) {
    fprintf(stderr, "ravand: %s %s; a scope value is 1-64 letters (Persian too), digits, spaces,"
                    " '.', '_' or '-'\n", opt_name, err.msg);
    return false;
  }
  *v = buf;
  return true;
}

static int p_add(rv_engine *e, cli *c){
  const char *role_s = opt(c, "--role"), *nid = opt(c, "--national-id"), *branch = opt(c, "--branch");
  const char *county = opt(c, "--county"), *org = opt(c, "--organisation");
  const char *agr = opt(c, "--agreement"), *groups = opt(c, "--groups");
  rv_store *st = rv_engine_store(e);
  rv_role role;
  rv_err err;
  const char *name;
  bool need_nid, need_branch, need_county, need_org;
  char sv[3][RV_SCOPE_BYTES + 1];

  if (!no_opts_left(c) || c->argc != 1) return usage();
  name = c->argv[0];
  if (!rv__valid_ident(name, RV_SCOPE_LEN)) {
    fprintf(stderr, "ravand: a principal name is 1-64 letters, digits, '.', '_' or '-'\n");
    return 2;
  }
  role = rv__role_parse(role_s);
  if (role == RV_ROLE_NONE) { fprintf(stderr, "ravand: --role is required and must be a known role\n"); return usage(); }
  need_nid = role == RV_ROLE_APPLICANT;
  need_branch = role == RV_ROLE_BRANCH;
  need_county = role == RV_ROLE_ASSOCIATION;
  need_org = role == RV_ROLE_ORGANISATION;
  if (need_nid != (nid != NULL) || need_branch != (branch != NULL) || need_county != (county != NULL) ||
      need_org != (org != NULL) || need_org != (agr != NULL)) {
    fprintf(stderr, "ravand: role %s takes %s\n", rv__role_name(role),
            need_nid ? "--national-id (and no other scope)" : need_branch ? "--branch (and no other scope)"
            : need_county ? "--county (and no other scope)" : need_org ? "--organisation and --agreement"
            : "no scope options");
    return 2;
  }
  if (nid && !rv_valid_national_id(nid)) { fprintf(stderr, "ravand: '%s' is not a valid national ID\n", nid); return 2; }
  if (!scope_arg("--branch", &branch, sv[0]) || !scope_arg("--county", &county, sv[1]) ||
      !scope_arg("--organisation", &org, sv[2]))
    return 2;
  /* The agreement scopes nothing (it is recorded with the starts an
  ** organisation makes): checked, but kept as the contract spells it. */
  if (agr && !rv_fa_scope_ok(agr, true)) {
    fprintf(stderr, "ravand: --agreement is 1-64 letters (Persian too), digits, spaces, '.', '_', '-' or '/'\n");
    return 2;
  }
  if (groups && (!valid_groups(groups) ||
                 !(role == RV_ROLE_BRANCH || role == RV_ROLE_ASSOCIATION || role == RV_ROLE_COMMITTEE))) {
    fprintf(stderr, "ravand: --groups is a comma list of up to 15 names, for branch, association and committee staff\n");
    return 2;
  }
  if (principal_id(st, name) != 0) { fprintf(stderr, "ravand: principal '%s' exists\n", name); return 1; }
  if (rv_store_begin(st, &err) != RV_OK ||
      rv_store_exec(st, &err,
        "INSERT INTO principals(name, role, national_id, branch, county, organisation, agreement,"
        " groups, created) VALUES(?,?,?,?,?,?,?,?,?)", "tttttttti",
        name, rv__role_name(role), nid, branch, county, org, agr, groups,
        rv_clock_now(rv_engine_clock(e))) != RV_OK) {
    rv_store_rollback(st);
    fprintf(stderr, "ravand: %s\n", err.msg);
    return 1;
  }
  {
    char obj[96];
    snprintf(obj, sizeof obj, "principal:%s", name);
    cli_audit(e, "principal.add", obj, rv__role_name(role));
  }
  if (rv_store_commit(st, &err) != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  printf("principal %s (%s) added\n", name, rv__role_name(role));
  return 0;
}

static int p_list(rv_engine *e, cli *c, bool json){
  sqlite3_stmt *s;
  cJSON *a = cJSON_CreateArray();
  if (!no_opts_left(c) || c->argc != 0) { cJSON_Delete(a); return usage(); }
  s = rv_store_stmt(rv_engine_store(e),
    "SELECT p.name, p.role, p.national_id, p.branch, p.county, p.organisation, p.agreement, p.groups,"
    " p.disabled, (SELECT count(*) FROM api_tokens t WHERE t.principal_id=p.id AND t.revoked IS NULL)"
    " FROM principals p ORDER BY p.name");
  while (sqlite3_step(s) == SQLITE_ROW) {
    static const char *const k[] = { "name", "role", "national_id", "branch", "county",
                                     "organisation", "agreement", "groups" };
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 8; i++)
      if (sqlite3_column_type(s, i) != SQLITE_NULL)
        cJSON_AddStringToObject(o, k[i], (const char *)sqlite3_column_text(s, i));
    cJSON_AddBoolToObject(o, "disabled", sqlite3_column_type(s, 8) != SQLITE_NULL);
    cJSON_AddNumberToObject(o, "tokens", sqlite3_column_int(s, 9));
    cJSON_AddItemToArray(a, o);
  }
  sqlite3_reset(s);
  if (json) {
    char *t = cJSON_Print(a);
    printf("%s\n", t);
    cJSON_free(t);
  } else {
    const cJSON *o;
    printf("%-20s %-13s %-30s %-8s %s\n", "NAME", "ROLE", "SCOPE", "TOKENS", "STATE");
    cJSON_ArrayForEach(o, a) {
      char scope[160] = "-";
      const char *nid = rv_json_str(o, "national_id"), *br = rv_json_str(o, "branch");
      const char *co = rv_json_str(o, "county"), *org = rv_json_str(o, "organisation");
      if (nid) snprintf(scope, sizeof scope, "national_id=%s", nid);
      else if (br) snprintf(scope, sizeof scope, "branch=%s", br);
      else if (co) snprintf(scope, sizeof scope, "county=%s", co);
      else if (org) snprintf(scope, sizeof scope, "org=%s/%s", org, rv_json_str(o, "agreement"));
      printf("%-20s %-13s %-30s %-8d %s%s%s\n", rv_json_str(o, "name"), rv_json_str(o, "role"), scope,
             (int)rv_json_int(o, "tokens", 0), rv_json_bool(o, "disabled", false) ? "disabled" : "active",
             rv_json_str(o, "groups") ? "  groups=" : "", rv_json_str(o, "groups") ? rv_json_str(o, "groups") : "");
    }
  }
  cJSON_Delete(a);
  return 0;
}

static int p_token(rv_engine *e, cli *c, const char *db_path, bool json){
  const char *expires = opt(c, "--expires"), *pepper = opt(c, "--pepper");
  rv_store *st = rv_engine_store(e);
  unsigned char key[32], raw[TOKEN_RAW], h[32];
  char token[TOKEN_LEN + 8], prefix[16], path[4096];
  int64_t pid, exp = 0, now = rv_clock_now(rv_engine_clock(e));
  rv_err err;
  sqlite3_stmt *s;

  if (!no_opts_left(c) || c->argc != 1) return usage();
  if ((pid = principal_id(st, c->argv[0])) == 0) { fprintf(stderr, "ravand: no principal '%s'\n", c->argv[0]); return 1; }
  if (expires) {
    rv_duration d;
    if (rv_duration_parse(expires, &d, &err) != RV_OK) { fprintf(stderr, "ravand: --expires: %s\n", err.msg); return 2; }
    exp = rv_duration_add(now, &d);
  }
  snprintf(path, sizeof path, "%s.pepper", db_path);
  if (rv__pepper_load(pepper ? pepper : path, true, key, &err) != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  randombytes_buf(raw, sizeof raw);
  memcpy(token, TOKEN_PREFIX, 4);
  sodium_bin2base64(token + 4, sizeof token - 4, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  snprintf(prefix, sizeof prefix, "%.12s", token);
  token_hash(key, token, h);
  sodium_memzero(key, sizeof key);
  if (rv_store_begin(st, &err) != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  s = rv_store_stmt(st, "INSERT INTO api_tokens(principal_id, hash, prefix, created, expires) VALUES(?,?,?,?,?)");
  sqlite3_bind_int64(s, 1, pid);
  sqlite3_bind_blob(s, 2, h, sizeof h, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 3, prefix, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 4, now);
  if (exp) sqlite3_bind_int64(s, 5, exp); else sqlite3_bind_null(s, 5);
  if (sqlite3_step(s) != SQLITE_DONE) {
    sqlite3_reset(s);
    rv_store_rollback(st);
    fprintf(stderr, "ravand: cannot store the token\n");
    return 1;
  }
  sqlite3_reset(s);
  {
    char obj[96], det[64];
    snprintf(obj, sizeof obj, "principal:%s", c->argv[0]);
    snprintf(det, sizeof det, "token %lld %s", (long long)rv_store_last_id(st), prefix);
    cli_audit(e, "principal.token", obj, det);
  }
  if (rv_store_commit(st, &err) != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  if (json) printf("{\"principal\": \"%s\", \"token\": \"%s\"}\n", c->argv[0], token);
  else printf("%s\n", token);
  sodium_memzero(token, sizeof token);
  return 0;
}

static int p_tokens(rv_engine *e, cli *c){
  rv_store *st = rv_engine_store(e);
  sqlite3_stmt *s;
  int64_t pid;
  if (!no_opts_left(c) || c->argc != 1) return usage();
  if ((pid = principal_id(st, c->argv[0])) == 0) { fprintf(stderr, "ravand: no principal '%s'\n", c->argv[0]); return 1; }
  s = rv_store_stmt(st, "SELECT id, prefix, created, expires, revoked FROM api_tokens WHERE principal_id=? ORDER BY id");
  rv_store_bind(s, "i", pid);
  printf("%-6s %-14s %-22s %-22s %s\n", "ID", "PREFIX", "CREATED", "EXPIRES", "STATE");
  while (sqlite3_step(s) == SQLITE_ROW) {
    char cr[40], ex[40] = "-";
    rv_datetime_format(sqlite3_column_int64(s, 2), cr, sizeof cr);
    if (sqlite3_column_type(s, 3) != SQLITE_NULL) rv_datetime_format(sqlite3_column_int64(s, 3), ex, sizeof ex);
    printf("%-6lld %-14s %-22s %-22s %s\n", (long long)sqlite3_column_int64(s, 0),
           (const char *)sqlite3_column_text(s, 1), cr, ex,
           sqlite3_column_type(s, 4) != SQLITE_NULL ? "revoked" : "active");
  }
  sqlite3_reset(s);
  return 0;
}

static int p_revoke(rv_engine *e, cli *c){
  const char *tok = opt(c, "--token");
  rv_store *st = rv_engine_store(e);
  int64_t pid, tid = 0, now = rv_clock_now(rv_engine_clock(e));
  rv_err err;
  rv_status rc;
  int n;
  if (!no_opts_left(c) || c->argc != 1) return usage();
  if ((pid = principal_id(st, c->argv[0])) == 0) { fprintf(stderr, "ravand: no principal '%s'\n", c->argv[0]); return 1; }
  if (tok && (tid = atoll(tok)) <= 0) { fprintf(stderr, "ravand: --token takes a token id (see 'principal tokens')\n"); return 2; }
  rc = rv_store_begin(st, &err);
  if (rc == RV_OK) {
    if (tid) rc = rv_store_exec(st, &err, "UPDATE api_tokens SET revoked=? WHERE principal_id=? AND id=?"
                                " AND revoked IS NULL", "iii", now, pid, tid);
    else rc = rv_store_exec(st, &err, "UPDATE api_tokens SET revoked=? WHERE principal_id=? AND revoked IS NULL",
                            "ii", now, pid);
  }
  n = rv_store_changes(st);
  if (rc == RV_OK) {
    char obj[96], det[48];
    snprintf(obj, sizeof obj, "principal:%s", c->argv[0]);
    snprintf(det, sizeof det, "%d token(s)", n);
    cli_audit(e, "principal.revoke", obj, det);
    rc = rv_store_commit(st, &err);
  } else rv_store_rollback(st);
  if (rc != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  printf("revoked %d token(s) of %s\n", n, c->argv[0]);
  return 0;
}

static int p_disable(rv_engine *e, cli *c, bool disable){
  rv_store *st = rv_engine_store(e);
  rv_err err;
  rv_status rc;
  if (!no_opts_left(c) || c->argc != 1) return usage();
  if (principal_id(st, c->argv[0]) == 0) { fprintf(stderr, "ravand: no principal '%s'\n", c->argv[0]); return 1; }
  rc = rv_store_begin(st, &err);
  if (rc == RV_OK)
    rc = disable ? rv_store_exec(st, &err, "UPDATE principals SET disabled=? WHERE name=?", "it",
                                 rv_clock_now(rv_engine_clock(e)), c->argv[0])
                 : rv_store_exec(st, &err, "UPDATE principals SET disabled=NULL WHERE name=?", "t",
                                 c->argv[0]);
  if (rc == RV_OK) {
    char obj[96];
    snprintf(obj, sizeof obj, "principal:%s", c->argv[0]);
    cli_audit(e, disable ? "principal.disable" : "principal.enable", obj, NULL);
    rc = rv_store_commit(st, &err);
  } else rv_store_rollback(st);
  if (rc != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
  printf("%s %s\n", c->argv[0], disable ? "disabled" : "enabled");
  return 0;
}

int rv_api_principal_cli(rv_engine *e, const char *db_path, int argc, char **argv, bool json){
  cli c = { argc - 1, argv + 1, false };
  const char *sub = argc > 0 ? argv[0] : "list";
  if (argc == 0) c.argc = 0;
  if (strcmp(sub, "add") == 0) return p_add(e, &c);
  if (strcmp(sub, "list") == 0) return p_list(e, &c, json);
  if (strcmp(sub, "token") == 0) return p_token(e, &c, db_path, json);
  if (strcmp(sub, "tokens") == 0) return p_tokens(e, &c);
  if (strcmp(sub, "revoke") == 0) return p_revoke(e, &c);
  if (strcmp(sub, "disable") == 0) return p_disable(e, &c, true);
  if (strcmp(sub, "enable") == 0) return p_disable(e, &c, false);
  return usage();
}
