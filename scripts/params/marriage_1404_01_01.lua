-- Marriage grant (کمک هزینه ازدواج, Article 85 of the Social Security Law):
-- parameters in force from 1404/01/01 (Jalali). A later change is a NEW file
-- params/marriage_YYYY_MM_DD.lua added to the list in scripts/marriage.lua;
-- never edit a file whose date has passed (recorded cases replay against it).
--
-- Status of each figure (see /work/shared/design/DOMAIN-RULES.md §1, §8):
--   CONFIRMED      statute text (Article 85, 1354) or several sources
--   SECONDARY      one secondary source: a default, re-check against the circular
--   NOT CONFIRMED  no source: a documented ravand assumption
return {
  effective_from = "1404/01/01",
  source = "DOMAIN-RULES.md §1.1 (Article 85), §1.2, §8",

  min_paid_days = 720,          -- CONFIRMED: 720 paid days ...
  window_months = 60,           -- CONFIRMED: ... in the 5 years before the marriage
                                --   (window = the 60 Jalali months ending with the marriage month)
  earnings_months = 24,         -- CONFIRMED: average wage = earnings of the 2 years before / 24
  divisor = 24,                 -- CONFIRMED
  require_permanent = true,     -- CONFIRMED: permanent, officially registered marriage
  require_insured_on_date = true, -- CONFIRMED: premium paid in the marriage month
  first_marriage_only = true,   -- CONFIRMED (law: "for the first time"); detected only through an
                                --   earlier marriage grant in the benefits record (registry sends
                                --   no prior-marriage field: NOT CONFIRMED)
  eligible_roles = { insured = true },  -- SECONDARY: vazeh says pensioners may qualify; off by default
  count_insurance_types = "all",        -- NOT CONFIRMED: which insurance types count toward 720 days

  apply_min_wage_floor = true,  -- SECONDARY: grant is at least the minimum monthly wage of the marriage year
  floor_month_days = 30,        -- monthly minimum wage = 30 x daily minimum (labour-law month)
  min_daily_wage = {            -- Rials per day, by Jalali year of the marriage
    [1400] = 885165,            -- SECONDARY (atiyehman.com)
    [1403] = 2388728,           -- CONFIRMED (Supreme Labour Council, session 329)
    [1404] = 3463656,           -- SECONDARY (kargar24.com quoting the SSO 1404 wage circular)
  },                            -- a missing year with the floor on stops the case with an incident

  claim_deadline_months = nil,  -- NOT CONFIRMED: no deadline found; nil = unlimited
  contact_wait_months = 12,     -- ravand assumption: month-end batches a case waits for Sheba/mobile
  registry_wait_days = 45,      -- ravand assumption: a self-registered marriage waits this long for
                                --   the registry record (the feed is monthly)
  notify_ineligible = false,    -- directive cl. 3: the ineligible read the reason in the portal
}
