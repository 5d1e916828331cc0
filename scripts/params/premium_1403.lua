-- scripts/params/premium_1403.lua -- premium parameters in force from 1403/01/01
-- (Jalali) until a later file replaces them. Used by scripts/premium.lua and
-- scripts/voluntary.lua. Sources: /work/shared/design/DOMAIN-RULES.md §2.2, §3.2, §8.
-- Money in integer Rials; rates in per mille (270 = 27 %).
return {
  year = 1403,
  effective_from = "1403/01/01",
  -- Minimum daily wage, Supreme Labour Council session 329 (1402/12/29). [CONFIRMED]
  min_daily_wage_rials = 2388728,
  -- Maximum insurable wage = 7 x the minimum daily wage. [SECONDARY: atiyehman 1400]
  max_daily_multiplier = 7,
  rates_permille = {
    voluntary = 270,  -- 27 %, all paid by the insured. [CONFIRMED for recent years; date of 26 -> 27 % NOT CONFIRMED]
    self12 = 120,     -- self-employed: retirement only [CONFIRMED]
    self14 = 140,     -- self-employed: retirement + death [CONFIRMED]
    self18 = 180,     -- self-employed: retirement + disability + death [CONFIRMED]
  },
  -- Agency (kargozari) fee per slip issued for the insured. ASSUMPTION, NOT
  -- CONFIRMED: the directive says "approved tariffs"; no figure was found.
  -- Placeholder until the tariff circular is entered.
  agency_fee_rials = 150000,
  agency_fee_confirmed = false,
  -- Days an online premium slip stays payable. ASSUMPTION, NOT CONFIRMED.
  slip_valid_days = 7,
  slip_valid_days_confirmed = false,
}
