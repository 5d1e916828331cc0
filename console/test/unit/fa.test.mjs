// Unit tests of the console's Persian helpers: node --test test/unit/
import test from 'node:test';
import assert from 'node:assert/strict';
import { toJalali, toGregorian, faDigits, asciiDigits, faNumber, faDate, faDateTime,
  parseDateInput, isoToJalali, jalaliMonthLength, isLeapJalali, monthsToEsfand } from '../../src/fa.js';

test('Gregorian -> Jalali on known dates', () => {
  assert.deepEqual(toJalali(2025, 12, 6), { jy: 1404, jm: 9, jd: 15 });
  assert.deepEqual(toJalali(2025, 3, 21), { jy: 1404, jm: 1, jd: 1 });
  assert.deepEqual(toJalali(2025, 3, 20), { jy: 1403, jm: 12, jd: 30 });   // 1403 is leap
  assert.deepEqual(toJalali(2026, 3, 21), { jy: 1405, jm: 1, jd: 1 });
  assert.deepEqual(toJalali(2026, 3, 20), { jy: 1404, jm: 12, jd: 29 });
  assert.deepEqual(toJalali(2026, 11, 22), { jy: 1405, jm: 9, jd: 1 });
  assert.deepEqual(toJalali(2026, 2, 19), { jy: 1404, jm: 11, jd: 30 });
  assert.deepEqual(toJalali(1979, 2, 11), { jy: 1357, jm: 11, jd: 22 });
});

test('Jalali -> Gregorian round trip over 40 years', () => {
  for (let d = Date.UTC(1990, 0, 1); d < Date.UTC(2030, 0, 1); d += 86400000) {
    const g = new Date(d);
    const j = toJalali(g.getUTCFullYear(), g.getUTCMonth() + 1, g.getUTCDate());
    assert.ok(j.jd >= 1 && j.jd <= jalaliMonthLength(j.jy, j.jm));
    const back = toGregorian(j.jy, j.jm, j.jd);
    assert.deepEqual([back.gy, back.gm, back.gd], [g.getUTCFullYear(), g.getUTCMonth() + 1, g.getUTCDate()]);
  }
});

test('leap years and month lengths', () => {
  assert.equal(isLeapJalali(1403), true);
  assert.equal(isLeapJalali(1404), false);
  assert.equal(jalaliMonthLength(1404, 12), 29);
  assert.equal(jalaliMonthLength(1403, 12), 30);
  assert.equal(jalaliMonthLength(1404, 6), 31);
  assert.equal(jalaliMonthLength(1404, 7), 30);
});

test('digits and numbers', () => {
  assert.equal(faDigits('1404/09/15'), '۱۴۰۴/۰۹/۱۵');
  assert.equal(asciiDigits('۱۲۳۴۵۶۷۸۰۶'), '1234567806');
  assert.equal(asciiDigits('٠١٢'), '012');
  assert.equal(faNumber(14100000), '۱۴٬۱۰۰٬۰۰۰');
  assert.equal(faNumber(0), '۰');
  assert.equal(faNumber(null), '');
});

test('times are shown in Tehran time', () => {
  assert.equal(faDate(Date.parse('2025-12-06T09:00:00+03:30')), '۱۴۰۴/۰۹/۱۵');
  // 21:00 UTC on 2025-12-05 is 00:30 on 1404/09/15 in Tehran
  assert.equal(faDateTime(Date.parse('2025-12-05T21:00:00Z')), '۱۴۰۴/۰۹/۱۵ ۰۰:۳۰');
  assert.equal(faDate(0), '');
});

test('date inputs: Jalali or ISO, Persian digits allowed', () => {
  assert.equal(parseDateInput('1404/09/15'), '2025-12-06');
  assert.equal(parseDateInput('۱۴۰۴/۹/۱۵'), '2025-12-06');
  assert.equal(parseDateInput('2025-12-06'), '2025-12-06');
  assert.equal(parseDateInput('1404/12/30'), null);     // 1404 Esfand has 29 days
  assert.equal(parseDateInput('1403/12/30'), '2025-03-20');
  assert.equal(parseDateInput('nonsense'), null);
  assert.equal(isoToJalali('2025-12-06'), '1404/09/15');
});

test('periods up to Esfand', () => {
  const m = monthsToEsfand(1404, 10);
  assert.deepEqual(m.map((x) => x.jm), [10, 11, 12]);
  assert.equal(m[2].label, 'اسفند ۱۴۰۴');
  assert.equal(monthsToEsfand(1404, 1).length, 12);
});
