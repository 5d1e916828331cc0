-- scripts/params/supplementary_1402.lua -- supplementary health and life
-- insurance of pensioners, contract period 1402-1403 (1 Azar 1402 .. 30 Aban 1403).
-- Used by scripts/supplementary.lua. Sources: /work/shared/design/DOMAIN-RULES.md §4.
-- Money in integer Rials (1 Toman = 10 Rials). Each figure says how sure it is.
return {
  period = "1402",
  label = "۱۴۰۲-۱۴۰۳",
  -- Contract year 1 Azar - 30 Aban. [CONFIRMED: kbte.ir, vazeh]
  contract_from = "1402/09/01",
  contract_to = "1403/08/30",
  -- Registration / cancellation window: until the end of Bahman 1402.
  -- [CONFIRMED for 1402: bankeghtesad.com]
  window_from = "1402/09/01",
  window_to = "1402/11/30",
  window_confirmed = true,
  -- 305,000 Toman per person per month, SSO pays 50 %. [CONFIRMED: bankeghtesad.com]
  premium_total_rials = 3050000,
  premium_pensioner_rials = 1525000,
  premium_confirmed = true,
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
