/*
** adapters/records/gen.c -- `ravand records generate N DIR`: realistic
** demo and test data at scale, deterministic in (N, seed).
**
** Every national ID has a correct check digit and is unique (IDs come
** from a bijection of a counter onto 0..10^9-1, skipping the few the
** validator refuses); every Sheba is IR + mod-97 check + bank code + 19
** digits; every mobile is 09 + a real operator prefix + 7 digits. The
** reference date is 1404/07/01: ages, histories and statements are
** relative to it, so the output does not depend on the clock.
**
** Each person draws from its own random stream (seed, index), so the
** files are the same whatever the buffering; IDs are allocated in order.
** Files are published atomically (util.h); with feed > 0 a registry
** marriage file "marriages.csv" (docs/adapters.md format) is written too,
** whose spouses are partly generated persons.
*/
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include "records/records.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/mem.h"

#define REF_Y 1404
#define REF_M 7
#define MIN_MONTHLY_1404 103909680LL    /* 30 x 3,463,656 Rials (DOMAIN-RULES §8) */
#define MIN_DAILY_1403   2388728LL

/*--- randomness -------------------------------------------------------------*/

typedef struct rng { uint64_t s; } rng;
static uint64_t next64(rng *r){               /* splitmix64 */
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static rng stream(uint64_t seed, uint64_t kind, uint64_t i){
  rng r = { seed * 0x2545F4914F6CDD1DULL ^ (kind << 56) ^ i };
  next64(&r);
  return r;
}
static int pick(rng *r, int n){ return (int)(next64(r) % (uint64_t)n); }
static bool chance(rng *r, int percent){ return pick(r, 100) < percent; }

/*--- identifiers ------------------------------------------------------------*/

typedef struct ids { uint64_t j; } ids;

static bool make_nid(uint64_t x, char out[11]){
  int d[10], sum = 0, r;
  for (int i = 8; i >= 0; i--) { d[i] = (int)(x % 10); x /= 10; }
  for (int i = 0; i < 9; i++) sum += d[i] * (10 - i);
  r = sum % 11;
  d[9] = r < 2 ? r : 11 - r;
  for (int i = 0; i < 10; i++) out[i] = (char)('0' + d[i]);
  out[10] = 0;
  return rv_valid_national_id(out);       /* refuses repeated digits and 000000 in the middle */
}

/* The next unused valid national ID: a bijection j -> (A*j + B) mod 10^9. */
static void next_nid(ids *a, char out[11]){
  for (;;) {
    uint64_t x = (387420489ULL * a->j + 123456789ULL) % 1000000000ULL;
    a->j++;
    if (make_nid(x, out)) return;
  }
}

static void make_sheba(rng *r, char out[27]){
  static const char *const banks[] = { "017", "012", "018", "019", "015", "016", "054", "055",
                                       "056", "057", "021", "062" };
  char bban[23], num[32];
  unsigned rem = 0;
  memcpy(bban, banks[pick(r, 12)], 3);
  for (int i = 3; i < 22; i++) bban[i] = (char)('0' + pick(r, 10));
  bban[22] = 0;
  snprintf(num, sizeof num, "%s182700", bban);
  for (size_t i = 0; num[i]; i++) rem = (rem * 10 + (unsigned)(num[i] - '0')) % 97;
  snprintf(out, 27, "IR%02u%s", 98 - rem, bban);
}

static void make_mobile(rng *r, char out[12]){
  static const char *const pre[] = { "912", "913", "915", "917", "919", "935", "936", "937", "938",
                                     "939", "901", "902", "903", "921", "922", "990", "991", "930",
                                     "933" };
  snprintf(out, 12, "0%s%07d", pre[pick(r, 19)], pick(r, 10000000));
}

/*--- names and places -----------------------------------------------------------*/

static const char *const MALE[] = {
  "محمد", "علی", "حسین", "رضا", "مهدی", "امیر", "حسن", "سعید", "مجید", "احمد", "مصطفی", "جواد",
  "حمید", "ابوالفضل", "محسن", "سجاد", "امید", "وحید", "یاسر", "کامران", "بهروز", "فرهاد", "داریوش",
  "سیاوش", "پویا", "آرش", "بابک", "کیوان", "میلاد", "نیما",
};
static const char *const FEMALE[] = {
  "فاطمه", "زهرا", "مریم", "معصومه", "زینب", "سارا", "نرگس", "الهام", "مهسا", "لیلا", "سمیه",
  "راضیه", "نازنین", "پریسا", "شیرین", "مینا", "فرشته", "نسرین", "آزاده", "ندا", "سپیده", "هانیه",
  "کوثر", "ریحانه", "الناز", "بهاره", "یاسمن", "طاهره", "شهلا", "پروین",
};
static const char *const LAST[] = {
  "محمدی", "حسینی", "احمدی", "رضایی", "موسوی", "کریمی", "رحیمی", "جعفری", "صادقی", "حیدری",
  "قاسمی", "کاظمی", "ابراهیمی", "اکبری", "نوری", "عباسی", "مرادی", "سلیمانی", "هاشمی", "زارعی",
  "طاهری", "یوسفی", "شریفی", "نجفی", "رستمی", "فرهادی", "امیری", "باقری", "کرمانی", "تهرانی",
  "شیرازی", "اصفهانی", "تبریزی", "قربانی", "ملکی", "نظری", "اسدی", "بهرامی", "جلالی", "خسروی",
};
static const struct { const char *name; int branch; } COUNTY[] = {
  {"تهران", 1201}, {"مشهد", 3101}, {"اصفهان", 2101}, {"شیراز", 4101}, {"تبریز", 5101},
  {"کرج", 1301}, {"اهواز", 6101}, {"قم", 1401}, {"کرمانشاه", 7101}, {"ارومیه", 5201},
  {"رشت", 8101}, {"زاهدان", 9101}, {"همدان", 7201}, {"کرمان", 9201}, {"یزد", 2201},
  {"اردبیل", 5301}, {"بندرعباس", 4201}, {"اراک", 1501}, {"زنجان", 5401}, {"سنندج", 7301},
};
#define N_OF(a) ((int)(sizeof a / sizeof a[0]))

/*--- dates and money ------------------------------------------------------------*/

typedef struct jdate { int y, m, d; } jdate;

static jdate rand_date(rng *r, int y){
  jdate j = { y, 1 + pick(r, 12), 1 };
  j.d = 1 + pick(r, rv_jalali_month_days(j.y, j.m));
  return j;
}
static void fmt_date(jdate j, char out[11]){
  snprintf(out, 11, "%04u/%02u/%02u", (unsigned)j.y % 10000u, (unsigned)j.m % 100u, (unsigned)j.d % 100u);
}
static void fmt_month(int idx, char out[8]){
  snprintf(out, 8, "%04u-%02u", (unsigned)(idx / 12) % 10000u, (unsigned)(idx % 12 + 1) % 100u);
}
static int midx(int y, int m){ return y * 12 + m - 1; }

/* A plausible monthly wage base of year y: the 1404 minimum, deflated ~25% a year. */
static int64_t base_wage(int y){
  double w = (double)MIN_MONTHLY_1404;
  for (int k = y; k < REF_Y && w > 1e6; k++) w *= 0.75;
  return (int64_t)w;
}

/*--- the generator --------------------------------------------------------------*/

typedef struct gen_out { rv_publish p; bool open; } gen_out;

static rv_status open_out(gen_out *o, const char *dir, const char *name, const char *header, rv_err *err){
  rv_status rc = rv_publish_begin(&o->p, dir, name, "records", err);
  if (rc != RV_OK) return rc;
  o->open = true;
  setvbuf(o->p.f, NULL, _IOFBF, 1 << 20);
  fputs(header, o->p.f);
  return RV_OK;
}

typedef struct person_ref { char nid[11]; char gender; bool married; } person_ref;

static void gen_person(uint64_t seed, int64_t i, ids *alloc, gen_out *o, person_ref *ref,
                       int64_t *counts){
  rng r = stream(seed, 1, (uint64_t)i);
  bool pensioner = chance(&r, 30), male = chance(&r, 50);
  int age = pensioner ? 55 + pick(&r, 31) : 20 + pick(&r, 41);
  jdate birth = rand_date(&r, REF_Y - age);
  char nid[11], bd[11], sheba[27] = "", mob[12] = "", pension[16] = "";
  const char *type = "", *marital, *supp = "";
  const char *last = LAST[pick(&r, N_OF(LAST))];
  int county = pick(&r, N_OF(COUNTY));
  bool married;

  next_nid(alloc, nid);
  fmt_date(birth, bd);
  if (!pensioner) {
    int t = pick(&r, 100);
    type = t < 80 ? "compulsory" : t < 90 ? "voluntary" : "self-employed";
  } else {
    snprintf(pension, sizeof pension, "%010lld", 1000000000LL + (long long)i);
    supp = chance(&r, 60) ? "has" : "has_not";
  }
  if (chance(&r, 95)) make_sheba(&r, sheba);
  if (chance(&r, 93)) make_mobile(&r, mob);
  if (!pensioner && age < 30) married = chance(&r, 50);
  else married = chance(&r, 82);
  marital = married ? "married" : (pensioner && chance(&r, 60)) ? "widowed" : "single";
  fprintf(o[0].p.f, "%s,%s,%s,%s,%c,%s,%s,%s,%s,%d,%s,%s,%s,%s,%s\r\n", nid,
          male ? MALE[pick(&r, N_OF(MALE))] : FEMALE[pick(&r, N_OF(FEMALE))], last,
          MALE[pick(&r, N_OF(MALE))], male ? 'm' : 'f', bd, pensioner ? "pensioner" : "insured",
          type, pension, COUNTY[county].branch + pick(&r, 10), COUNTY[county].name, sheba, mob,
          marital, supp);
  counts[0]++;
  if (ref) { memcpy(ref->nid, nid, 11); ref->gender = male ? 'm' : 'f'; ref->married = married; }

  /* contribution history: spans of months, newest first */
  {
    int end = midx(REF_Y, REF_M) - (pensioner ? (age - 60 > 0 ? (age - 60) * 12 : 0) + 1
                                            : (chance(&r, 85) ? 0 : 1 + pick(&r, 24)));
    int earliest = midx(birth.y + 18, birth.m);
    int spans = pensioner ? 1 : 1 + pick(&r, 3);
    for (int s = 0; s < spans && end >= earliest; s++) {
      int len = pensioner ? 300 + pick(&r, 120) : 6 + pick(&r, 115);
      int start = end - len + 1, dpm = chance(&r, 90) ? 31 : 10 + pick(&r, 16);
      char f[8], t[8], workshop[16];
      const char *stype = (s == 0 && !pensioner) ? type : "compulsory";
      int64_t wage;
      if (start < earliest) start = earliest;
      wage = base_wage(start / 12) * (100 + pick(&r, 300)) / 100;
      if (wage > base_wage(start / 12) * 7) wage = base_wage(start / 12) * 7;
      fmt_month(start, f);
      fmt_month(end, t);
      if (strcmp(stype, "compulsory") == 0) snprintf(workshop, sizeof workshop, "W%07d", pick(&r, 10000000));
      else snprintf(workshop, sizeof workshop, "%s", strcmp(stype, "voluntary") == 0 ? "VOLUNTARY" : "SELF");
      fprintf(o[1].p.f, "%s,%s,%s,%d,%lld,%s,%s\r\n", nid, f, t, dpm, (long long)wage, stype, workshop);
      counts[1]++;
      end = start - 1 - (1 + pick(&r, 36));
    }
  }

  /* dependents: pensioners always may have them; 30% of insured persons do */
  if (pensioner || chance(&r, 30)) {
    int kids = pick(&r, 4);
    bool dep_supp = strcmp(supp, "has") == 0;
    if (married && chance(&r, 90)) {
      char dn[11], db[11];
      jdate sb = rand_date(&r, birth.y + (male ? 2 + pick(&r, 6) : -(1 + pick(&r, 6))));
      next_nid(alloc, dn);
      fmt_date(sb, db);
      fprintf(o[2].p.f, "%s,%s,%s,%s,%s,%c,%s,,%s\r\n", nid, dn,
              male ? FEMALE[pick(&r, N_OF(FEMALE))] : MALE[pick(&r, N_OF(MALE))],
              LAST[pick(&r, N_OF(LAST))], male ? "spouse" : "husband", male ? 'f' : 'm', db,
              dep_supp && chance(&r, 85) ? "has" : "has_not");
      counts[2]++;
    }
    for (int k = 0; k < kids; k++) {
      char dn[11], db[11], end[11] = "";
      bool son = chance(&r, 50);
      jdate cb = rand_date(&r, birth.y + 22 + pick(&r, 18));
      if (cb.y > REF_Y - 1) continue;
      next_nid(alloc, dn);
      fmt_date(cb, db);
      if (son) {
        jdate e = { cb.y + 20, cb.m, cb.d };
        if (e.d > rv_jalali_month_days(e.y, e.m)) e.d = rv_jalali_month_days(e.y, e.m);
        fmt_date(e, end);
      } else if (REF_Y - cb.y > 22 && chance(&r, 40)) {
        fmt_date(rand_date(&r, cb.y + 20 + pick(&r, REF_Y - cb.y - 21)), end);   /* married */
      }
      fprintf(o[2].p.f, "%s,%s,%s,%s,%s,%c,%s,%s,%s\r\n", nid, dn,
              son ? MALE[pick(&r, N_OF(MALE))] : FEMALE[pick(&r, N_OF(FEMALE))], last,
              son ? "son" : "daughter", son ? 'm' : 'f', db, end,
              dep_supp && chance(&r, 70) ? "has" : "has_not");
      counts[2]++;
    }
    if (pensioner && age <= 70 && chance(&r, 5)) {
      char dn[11], db[11];
      next_nid(alloc, dn);
      fmt_date(rand_date(&r, birth.y - 20 - pick(&r, 10)), db);
      fprintf(o[2].p.f, "%s,%s,%s,%s,mother,f,%s,,%s\r\n", nid, dn, FEMALE[pick(&r, N_OF(FEMALE))],
              LAST[pick(&r, N_OF(LAST))], db, "has_not");
      counts[2]++;
    }
  }

  /* last year's account statement of voluntary and self-employed contributors */
  if (strcmp(type, "voluntary") == 0 || strcmp(type, "self-employed") == 0) {
    int rate = strcmp(type, "voluntary") == 0 ? 27 : (pick(&r, 3) == 0 ? 12 : pick(&r, 2) ? 14 : 18);
    int mult = 1 + pick(&r, 3);
    for (int m = 1; m <= 12; m++) {
      int64_t due = MIN_DAILY_1403 * rv_jalali_month_days(REF_Y - 1, m) * mult * rate / 100;
      int p = pick(&r, 100);
      int64_t paid = p < 85 ? due : p < 95 ? 0 : due / 2;
      char pd[11] = "";
      if (paid > 0) {
        jdate d = { m == 12 ? REF_Y : REF_Y - 1, m == 12 ? 1 : m + 1, 1 };
        d.d = 1 + pick(&r, rv_jalali_month_days(d.y, d.m));
        fmt_date(d, pd);
      }
      fprintf(o[3].p.f, "%s,%04d-%02d,%lld,%lld,%s\r\n", nid, REF_Y - 1, m, (long long)due,
              (long long)paid, pd);
      counts[3]++;
    }
  }

  /* benefits paid earlier: a few married insured persons had a marriage grant */
  if (!pensioner && married && chance(&r, 3)) {
    jdate d = rand_date(&r, REF_Y - 1 - pick(&r, 8));
    char ds[11];
    fmt_date(d, ds);
    fprintf(o[4].p.f, "%s,marriage-grant,%s,%lld\r\n", nid, ds, (long long)base_wage(d.y));
    counts[4]++;
  }
}

/* Rewrite the ASCII digits of a 10-digit ID as Persian digits (in place;
** the buffer must hold 21 bytes). */
static void persian_digits(char *s){
  char t[32];
  size_t w = 0;
  for (const char *p = s; *p && w + 2 < sizeof t; p++) {
    if (*p >= '0' && *p <= '9') { t[w++] = (char)0xDB; t[w++] = (char)(0xB0 + (*p - '0')); }
    else t[w++] = *p;
  }
  t[w] = 0;
  memcpy(s, t, w + 1);
}

/* A registry marriage file of m records over the generated persons. */
static void gen_feed(uint64_t seed, int64_t m, const person_ref *refs, int64_t n, ids *alloc, FILE *f){
  int64_t males = 0, females = 0;
  int64_t *mi = rv_malloc(sizeof *mi * (size_t)(n + 1)), *fi = rv_malloc(sizeof *fi * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) {
    if (refs[i].gender == 'm') mi[males++] = i; else fi[females++] = i;
  }
  fputs("husband_national_id,wife_national_id,marriage_date,certificate_no,registry_office,"
        "marriage_type\r\n", f);
  for (int64_t j = 0; j < m; j++) {
    rng r = stream(seed, 2, (uint64_t)j);
    char h[24], w[11], ds[11];
    int county = pick(&r, N_OF(COUNTY));
    jdate d = { REF_Y, 1 + pick(&r, REF_M - 1), 1 };
    d.d = 1 + pick(&r, rv_jalali_month_days(d.y, d.m));
    if (males && chance(&r, 60)) memcpy(h, refs[mi[pick(&r, (int)males)]].nid, 11);
    else next_nid(alloc, h);
    if (females && chance(&r, 60)) memcpy(w, refs[fi[pick(&r, (int)females)]].nid, 11);
    else next_nid(alloc, w);
    fmt_date(d, ds);
    if (j % 20 == 7) persian_digits(h);    /* some producers write Persian digits */
    fprintf(f, "%s,%s,%s,%lld,دفتر ازدواج %d %s,%s\r\n", h, w, ds, 1000000LL + (long long)j,
            1 + pick(&r, 400), COUNTY[county].name, chance(&r, 95) ? "permanent" : "temporary");
  }
  fprintf(f, "END,%lld\r\n", (long long)m);
  rv_free(mi);
  rv_free(fi);
}

rv_status rv_records_generate(int64_t n, uint64_t seed, const char *dir, cJSON **out, rv_err *err){
  return rv_records_generate_feed(n, 0, seed, dir, out, err);
}

rv_status rv_records_generate_feed(int64_t n, int64_t feed, uint64_t seed, const char *dir,
                                   cJSON **out, rv_err *err){
  static const char *const names[5] = { "persons.csv", "contributions.csv", "dependents.csv",
                                        "statements.csv", "benefits.csv" };
  static const char *const headers[5] = {
    "national_id,first_name,last_name,father_name,gender,birth_date,role,insurance_type,"
    "pension_no,branch,county,sheba,mobile,marital_status,supplementary\r\n",
    "national_id,from_period,to_period,days_per_month,wage_rials,insurance_type,workshop\r\n",
    "principal_national_id,national_id,first_name,last_name,relation,gender,birth_date,"
    "dependency_end,supplementary\r\n",
    "national_id,period,due_rials,paid_rials,paid_date\r\n",
    "national_id,kind,date,amount_rials\r\n",
  };
  gen_out o[5];
  int64_t counts[5] = {0};
  ids alloc = { 1 };
  person_ref *refs = NULL;
  rv_status rc = RV_OK;
  cJSON *rep;

  *out = NULL;
  if (n < 0 || n > 50000000) return rv_fail(err, RV_INVALID, "N must be 0..50,000,000");
  if (feed < 0 || feed > 10000000) return rv_fail(err, RV_INVALID, "the feed size must be 0..10,000,000");
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return rv_fail(err, RV_IO, "cannot create directory '%s': %s", dir, strerror(errno));
  memset(o, 0, sizeof o);
  for (int k = 0; k < 5 && rc == RV_OK; k++) rc = open_out(&o[k], dir, names[k], headers[k], err);
  if (rc == RV_OK && feed > 0) refs = rv_malloc(sizeof *refs * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; rc == RV_OK && i < n; i++)
    gen_person(seed, i, &alloc, o, refs ? &refs[i] : NULL, counts);
  for (int k = 0; k < 5; k++) {
    if (!o[k].open) continue;
    if (rc == RV_OK) rc = rv_publish_end(&o[k].p, err);
    else rv_publish_abort(&o[k].p);
  }
  if (rc == RV_OK && feed > 0) {
    gen_out fo;
    memset(&fo, 0, sizeof fo);
    rc = rv_publish_begin(&fo.p, dir, "marriages.csv", "records", err);
    if (rc == RV_OK) {
      setvbuf(fo.p.f, NULL, _IOFBF, 1 << 20);
      gen_feed(seed, feed, refs, n, &alloc, fo.p.f);
      rc = rv_publish_end(&fo.p, err);
    }
  }
  rv_free(refs);
  if (rc != RV_OK) return rc;
  rep = cJSON_CreateObject();
  cJSON_AddStringToObject(rep, "dir", dir);
  cJSON_AddNumberToObject(rep, "seed", (double)seed);
  for (int k = 0; k < 5; k++) cJSON_AddNumberToObject(rep, names[k], (double)counts[k]);
  if (feed > 0) cJSON_AddNumberToObject(rep, "marriages.csv", (double)feed);
  *out = rep;
  return RV_OK;
}
