-- Insurance-coverage / pension status inquiry (directive 002): parameters in force
-- from 1405/01/01 (Jalali). A change is a NEW dated file added to scripts/inquiry.lua.
-- The directive fixes none of these figures (DOMAIN-RULES.md §5: NOT CONFIRMED);
-- every one is a documented ravand default awaiting the directive owner's decision.
return {
  effective_from = "1405/01/01",
  source = "ravand defaults; directive 002 and DOMAIN-RULES.md §5 give no figures",

  document_valid_days = 30,   -- NOT CONFIRMED: how long a status document and its code are valid
  single_use = false,         -- NOT CONFIRMED: false = any number of fetches within validity
  max_fetches = 20,           -- NOT CONFIRMED: fetch cap per document (0 = none); enforced by the API
  code_bits = 80,             -- ravand: entropy of an access code (the issuing adapter refuses < 80)
  lookback_months = 12,       -- NOT CONFIRMED: contribution months summarised in the document

  max_users_per_body = 50,    -- NOT CONFIRMED: users on one access-grant form
  agreement_max_years = 3,    -- NOT CONFIRMED: longest agreement validity accepted
  purposes = { "bank", "court", "insurer", "support", "employer", "other" },
}
