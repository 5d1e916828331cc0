// fa.js -- Persian presentation: digits, Jalali dates (Tehran time), amounts,
// labels for the engine's words. No dependencies; unit-tested in test/unit/.

const FA_DIGITS = '۰۱۲۳۴۵۶۷۸۹';

/** ASCII digits -> Persian digits (everything else unchanged). */
export function faDigits(v) {
  if (v === null || v === undefined) return '';
  return String(v).replace(/[0-9]/g, (d) => FA_DIGITS[d]);
}

/** Persian or Arabic-Indic digits -> ASCII (for what people type). */
export function asciiDigits(s) {
  return String(s ?? '')
    .replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06f0))
    .replace(/[٠-٩]/g, (d) => String(d.charCodeAt(0) - 0x0660));
}

/** 14100000 -> '۱۴٬۱۰۰٬۰۰۰' */
export function faNumber(n) {
  if (n === null || n === undefined || n === '') return '';
  const x = Number(n);
  if (!Number.isFinite(x)) return faDigits(n);
  const neg = x < 0;
  const [int, frac] = String(Math.abs(x)).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, '٬');
  return (neg ? '-' : '') + faDigits(grouped) + (frac ? '٫' + faDigits(frac) : '');
}

export function faRials(n) {
  return faNumber(n) + ' ریال';
}

// --- Jalali (Solar Hijri) calendar ----------------------------------------
// The arithmetic algorithm of Kazimierz Borkowski (leap years by the 2820-
// year cycle breaks), as used by jalaali-js; valid for Jalali years -61..3177.

const BREAKS = [-61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210, 1635, 2060, 2097,
  2192, 2262, 2324, 2394, 2456, 3178];

const div = (a, b) => ~~(a / b);
const mod = (a, b) => a - ~~(a / b) * b;

function jalCal(jy) {
  const gy = jy + 621;
  let leapJ = -14;
  let jp = BREAKS[0];
  let jump = 0;
  if (jy < jp || jy >= BREAKS[BREAKS.length - 1]) throw new RangeError('Jalali year out of range: ' + jy);
  for (let i = 1; i < BREAKS.length; i++) {
    const jm = BREAKS[i];
    jump = jm - jp;
    if (jy < jm) break;
    leapJ += div(jump, 33) * 8 + div(mod(jump, 33), 4);
    jp = jm;
  }
  let n = jy - jp;
  leapJ += div(n, 33) * 8 + div(mod(n, 33) + 3, 4);
  if (mod(jump, 33) === 4 && jump - n === 4) leapJ += 1;
  const leapG = div(gy, 4) - div((div(gy, 100) + 1) * 3, 4) - 150;
  const march = 20 + leapJ - leapG;
  if (jump - n < 6) n = n - jump + div(jump + 4, 33) * 33;
  let leap = mod(mod(n + 1, 33) - 1, 4);
  if (leap === -1) leap = 4;
  return { leap, gy, march };
}

function g2d(gy, gm, gd) {
  let d = div((gy + div(gm - 8, 6) + 100100) * 1461, 4) + div(153 * mod(gm + 9, 12) + 2, 5) + gd - 34840408;
  d = d - div(div(gy + 100100 + div(gm - 8, 6), 100) * 3, 4) + 752;
  return d;
}

function d2g(jdn) {
  let j = 4 * jdn + 139361631;
  j = j + div(div(4 * jdn + 183187720, 146097) * 3, 4) * 4 - 3908;
  const i = div(mod(j, 1461), 4) * 5 + 308;
  const gd = div(mod(i, 153), 5) + 1;
  const gm = mod(div(i, 153), 12) + 1;
  const gy = div(j, 1461) - 100100 + div(8 - gm, 6);
  return { gy, gm, gd };
}

function j2d(jy, jm, jd) {
  const r = jalCal(jy);
  return g2d(r.gy, 3, r.march) + (jm - 1) * 31 - div(jm, 7) * (jm - 7) + jd - 1;
}

function d2j(jdn) {
  const gy = d2g(jdn).gy;
  let jy = gy - 621;
  const r = jalCal(jy);
  const start = g2d(gy, 3, r.march);
  let k = jdn - start;
  if (k >= 0) {
    if (k <= 185) return { jy, jm: 1 + div(k, 31), jd: mod(k, 31) + 1 };
    k -= 186;
  } else {
    jy -= 1;
    k += 179;
    if (r.leap === 1) k += 1;
  }
  return { jy, jm: 7 + div(k, 30), jd: mod(k, 30) + 1 };
}

/** Gregorian y/m/d -> {jy, jm, jd}. */
export function toJalali(gy, gm, gd) {
  return d2j(g2d(gy, gm, gd));
}

/** Jalali y/m/d -> {gy, gm, gd}. */
export function toGregorian(jy, jm, jd) {
  return d2g(j2d(jy, jm, jd));
}

export function isLeapJalali(jy) {
  return jalCal(jy).leap === 0;
}

export function jalaliMonthLength(jy, jm) {
  if (jm <= 6) return 31;
  if (jm <= 11) return 30;
  return isLeapJalali(jy) ? 30 : 29;
}

export const JALALI_MONTHS = ['فروردین', 'اردیبهشت', 'خرداد', 'تیر', 'مرداد', 'شهریور',
  'مهر', 'آبان', 'آذر', 'دی', 'بهمن', 'اسفند'];

// Iran keeps UTC+03:30 all year (no daylight saving since 1401/1402).
const TEHRAN_OFFSET_MS = 3.5 * 3600 * 1000;
const pad2 = (n) => String(n).padStart(2, '0');

/** Epoch ms -> Tehran wall clock parts, with the Jalali date. */
export function tehranParts(ms) {
  const d = new Date(Number(ms) + TEHRAN_OFFSET_MS);
  const gy = d.getUTCFullYear(), gm = d.getUTCMonth() + 1, gd = d.getUTCDate();
  const j = toJalali(gy, gm, gd);
  return { ...j, gy, gm, gd, hh: d.getUTCHours(), mi: d.getUTCMinutes() };
}

/** Epoch ms -> '۱۴۰۴/۰۹/۱۵' (Tehran). Empty for 0/null. */
export function faDate(ms) {
  if (!ms) return '';
  const p = tehranParts(ms);
  return faDigits(`${p.jy}/${pad2(p.jm)}/${pad2(p.jd)}`);
}

/** Epoch ms -> '۱۴۰۴/۰۹/۱۵ ۰۹:۰۰' (Tehran). */
export function faDateTime(ms) {
  if (!ms) return '';
  const p = tehranParts(ms);
  return faDigits(`${p.jy}/${pad2(p.jm)}/${pad2(p.jd)} ${pad2(p.hh)}:${pad2(p.mi)}`);
}

/** Epoch ms -> '۱۵ آذر ۱۴۰۴'. */
export function faDateLong(ms) {
  if (!ms) return '';
  const p = tehranParts(ms);
  return `${faDigits(p.jd)} ${JALALI_MONTHS[p.jm - 1]} ${faDigits(p.jy)}`;
}

/**
 * What people type as a date ('1404/09/15', '۱۴۰۴-۹-۱۵', or ISO '2025-12-06')
 * -> ISO date 'YYYY-MM-DD' (Gregorian) or null. Jalali when the year < 1700.
 */
export function parseDateInput(s) {
  const t = asciiDigits(s).trim();
  const m = /^(\d{4})[/\-.](\d{1,2})[/\-.](\d{1,2})$/.exec(t);
  if (!m) return null;
  const y = +m[1], mo = +m[2], d = +m[3];
  if (mo < 1 || mo > 12 || d < 1) return null;
  if (y < 1700) {
    if (d > jalaliMonthLength(y, mo)) return null;
    const g = toGregorian(y, mo, d);
    return `${g.gy}-${pad2(g.gm)}-${pad2(g.gd)}`;
  }
  const dt = new Date(Date.UTC(y, mo - 1, d));
  if (dt.getUTCMonth() !== mo - 1) return null;
  return `${y}-${pad2(mo)}-${pad2(d)}`;
}

/** ISO date 'YYYY-MM-DD' -> Jalali '1404/09/15' (ASCII digits, for inputs). */
export function isoToJalali(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || '');
  if (!m) return '';
  const j = toJalali(+m[1], +m[2], +m[3]);
  return `${j.jy}/${pad2(j.jm)}/${pad2(j.jd)}`;
}

/** The months from Jalali month jm of jy to Esfand: [{jy, jm, label}]. */
export function monthsToEsfand(jy, jm) {
  const out = [];
  for (let m = jm; m <= 12; m++) out.push({ jy, jm: m, label: `${JALALI_MONTHS[m - 1]} ${faDigits(jy)}` });
  return out;
}

// --- Words ------------------------------------------------------------------

export const ROLE_LABELS = {
  applicant: 'متقاضی',
  branch: 'کارشناس شعبه',
  association: 'کانون بازنشستگان',
  committee: 'کمیته',
  it_admin: 'مدیریت فناوری اطلاعات',
  organisation: 'دستگاه طرف تفاهم',
  operator: 'راهبر سامانه',
  analyst: 'تحلیلگر فرایند',
};

// Candidate groups (cartables).
export const GROUP_LABELS = {
  applicant: 'متقاضی',
  branch: 'شعبه',
  association: 'کانون بازنشستگان',
  committee: 'کمیته صیانت از اطلاعات',
  it_admin: 'فناوری اطلاعات',
  organisation: 'دستگاه',
  supervisor: 'رئیس شعبه',
  deputy: 'معاونت بیمه‌ای',
};

export function groupsLabel(s) {
  return String(s || '').split(',').map((g) => g.trim()).filter(Boolean).map((g) => GROUP_LABELS[g] || g).join('، ');
}

export const INSTANCE_STATUS = {
  active: 'در جریان',
  completed: 'مختومه',
  canceled: 'لغو شده',
  terminated: 'خاتمه یافته',
};

export const TASK_STATE = { open: 'باز', completed: 'انجام شده', canceled: 'لغو شده' };

// Labels of the enum values the directives' forms use. Unknown values are shown as they are.
export const VALUE_LABELS = {
  confirm: 'تایید و ادامه',
  withdraw: 'ابطال درخواست',
  back: 'بازگشت به گام قبل',
  mismatch: 'اطلاعات مغایرت دارد',
  approve: 'تایید',
  reject: 'عدم تایید',
  accept: 'پذیرش',
  register: 'ثبت‌نام',
  cancel: 'انصراف',
  permanent: 'دائم',
  temporary: 'موقت',
  self: 'خود متقاضی',
  attorney: 'وکیل',
  online: 'غیرحضوری',
  branch: 'شعبه',
  agency: 'کارگزاری',
  true: 'بله',
  false: 'خیر',
};

export function valueLabel(v) {
  return VALUE_LABELS[v] ?? String(v);
}

export const HISTORY_EVENTS = {
  INSTANCE_STARTED: 'شروع',
  INSTANCE_COMPLETED: 'پایان',
  INSTANCE_CANCELED: 'لغو',
  ELEMENT_ACTIVATED: 'ورود',
  ELEMENT_COMPLETED: 'خروج',
  FLOW_TAKEN: 'مسیر',
  GATEWAY_DECISION: 'تصمیم درگاه',
  TASK_CREATED: 'ایجاد کار',
  TASK_COMPLETED: 'انجام کار',
  TASK_CLAIMED: 'برداشتن کار',
  TASK_UNCLAIMED: 'رها کردن کار',
  TASK_TRANSFERRED: 'انتقال به شعبه دیگر',
  JOB_CREATED: 'ارسال به سرویس',
  JOB_COMPLETED: 'پاسخ سرویس',
  JOB_FAILED: 'خطای سرویس',
  INCIDENT_CREATED: 'بروز خطا',
  INCIDENT_RESOLVED: 'رفع خطا',
  STATUS: 'وضعیت',
  TIMER_FIRED: 'زمان‌سنج',
  MESSAGE_CORRELATED: 'دریافت پیام',
};
