-- scripts/params/supplementary_1404.lua -- supplementary health and life
-- insurance of pensioners, contract period 1404-1405 (1 Azar 1404 .. 30 Aban 1405).
-- Used by scripts/supplementary.lua. Sources: /work/shared/design/DOMAIN-RULES.md §4.
-- Money in integer Rials (1 Toman = 10 Rials). Each figure says how sure it is.
return {
  period = "1404",
  label = "۱۴۰۴-۱۴۰۵",
  -- Contract year 1 Azar - 30 Aban. [CONFIRMED: kbte.ir, vazeh]
  contract_from = "1404/09/01",
  contract_to = "1405/08/30",
  -- Registration / cancellation window. NOT CONFIRMED for this period: the
  -- 1402 window (1 Azar - end of Bahman) is taken as the default.
  window_from = "1404/09/01",
  window_to = "1404/11/30",
  window_confirmed = false,
  -- 720,000 Toman per person per month, of which the pensioner pays 470,000 and
  -- SSO 250,000 (year inferred). [SECONDARY: vazeh quoting the insurer's CEO]
  premium_total_rials = 7200000,
  premium_pensioner_rials = 4700000,
  premium_confirmed = false,
  -- Deductions start this many months after the month the branch accepts.
  -- ASSUMPTION, NOT CONFIRMED (no text found; the payroll of a month is closed
  -- before its end, so the next month is the first that can carry it).
  deduction_start_offset_months = 1,
  -- A dependent may be registered only if the pensioner has (or gets) the
  -- insurance too; cancelling the pensioner means cancelling every dependent.
  -- ASSUMPTION, NOT CONFIRMED (kbte.ir 1397: the spouse is enrolled with the principal).
  dependents_require_principal = true,
  -- Time the county association and the branch have before the task is overdue
  -- (escalation flag). ASSUMPTION, NOT CONFIRMED: the directive sets no deadline.
  association_due = "P10D",
  branch_due = "P10D",
}
