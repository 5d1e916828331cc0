-- scripts/params/voluntary_1403.lua -- voluntary-continuation contract parameters
-- in force from 1403/01/01 (Jalali) until a later file replaces them.
-- Sources: directive 001 (seed 001_0e96a05db1f4a9a0.txt), DOMAIN-RULES.md §2.
return {
  year = 1403,
  effective_from = "1403/01/01",
  -- Eligibility (DOMAIN-RULES §2.1) [CONFIRMED]
  min_paid_days = 30,             -- at least 30 days of paid premium
  max_age = 50,                   -- above 50 only with record >= the excess years
  no_age_limit_paid_days = 3650,  -- 10 years of record: no age limit
  -- Medical-examination exemption (DOMAIN-RULES §2.4) [CONFIRMED, one news source]
  exam_exempt_min_days = 365,
  exam_exempt_max_gap_months = 9,
  -- Clause 2: examination within 2 months of the contract date; slips for
  -- at most 2 months from the contract date until the result. [directive text]
  exam_deadline_months = 2,   -- Jalali months
  slip_horizon_months = 2,    -- slips only for months that start before this
  -- Clause 2 note: inpatient services before the examination "to be announced
  -- later" by the deputies. NOT SET: false until announced.
  inpatient_before_exam = false,
  -- Clause 5: payment deadline in days from the contract date. The extracted
  -- text reads "22"; digits in the extraction are unreliable. NOT CONFIRMED.
  payment_deadline_days = 22,
  payment_deadline_confirmed = false,
  -- Clause 3: documents that force the branch path. Growth certificate below
  -- this age [ASSUMPTION: 18 full years, the age of majority in the civil code
  -- for financial matters needs a growth certificate below it], guardianship
  -- deed when the applicant declares a guardian.
  growth_certificate_below_age = 18,
  -- Wage base (DOMAIN-RULES §2.3): between the minimum and maximum insurable
  -- wage [SECONDARY]. Cap on raising the base over the last wage and its
  -- record threshold: NOT CONFIRMED, nil = not applied.
  max_raise_over_last_wage_permille = nil,
  raise_cap_min_paid_days = nil,
  -- Contract lapses when the first premium is not paid by the deadline
  -- (decision; advice sites say the contract becomes void). [SECONDARY]
  lapse_on_unpaid = true,
}
