-- scripts/premium.lua -- online premium payment slips for self-employed and
-- voluntary insured (directive 004, processes/premium-slip.bpmn) and the
-- branch-issued slip-system credentials (processes/portal-credentials.bpmn).
--
-- Every figure comes from the dated parameter files scripts/params/premium_YYYY.lua
-- (a file is in force from 1 Farvardin of its year until a later file replaces
-- it). Money is integer Rials; rates are per mille.
--
-- Functions called with rv:function get the instance's visible variables and
-- return an object whose keys become variables.

local M = {}

-- Years that have a parameter file, oldest first. Add a year here when its
-- circular is entered as scripts/params/premium_YYYY.lua.
M.PARAM_YEARS = { 1403, 1404 }

-- The parameters in force in Jalali year y: the newest file whose year <= y.
function M.params_for(y)
  local chosen
  for _, py in ipairs(M.PARAM_YEARS) do
    if py <= y then chosen = py end
  end
  if chosen == nil then error("no premium parameters in force for year " .. tostring(y)) end
  local p = require("params.premium_" .. chosen)
  return p, chosen
end

-- "yyyy-mm" <-> year, month
function M.period(y, m) return string.format("%04d-%02d", y, m) end
function M.parse_period(s)
  local y, m = tostring(s):match("^(%d%d%d%d)-(%d%d)$")
  if not y then error("bad period '" .. tostring(s) .. "'") end
  return tonumber(y), tonumber(m)
end
function M.next_period(y, m)
  if m == 12 then return y + 1, 1 end
  return y, m + 1
end
function M.jdate(ms)
  local j = cal.jalali(ms)
  return string.format("%04d/%02d/%02d", j.year, j.month, j.day)
end

-- The daily wage clamped to [minimum, multiplier x minimum] of year y.
function M.clamp_daily(daily, y)
  local p = M.params_for(y)
  local lo = p.min_daily_wage_rials
  local hi = p.max_daily_multiplier * lo
  if daily < lo then return lo, "raised to the minimum wage" end
  if daily > hi then return hi, "lowered to the maximum insurable wage" end
  return daily, nil
end

-- Premium of one Jalali month: rate x daily base x days of that month
-- (DOMAIN-RULES §3.3: the published figures use the month's real length).
-- days may be given for a part month.
function M.month_premium(category, daily, y, m, days)
  local p = M.params_for(y)
  local rate = p.rates_permille[category]
  if rate == nil then error("unknown premium category '" .. tostring(category) .. "'") end
  local base = M.clamp_daily(daily, y)
  local d = days or cal.month_days(y, m)
  return base * d * rate // 1000, rate, base, d
end

local function categories_ok(c)
  return c == "voluntary" or c == "self12" or c == "self14" or c == "self18"
end

--------------------------------------------------------------------------------
-- premium-slip

-- After the records look-ups: may this person get online slips now?
-- Reads person_result (records op person), statement_last (records op
-- statement, last Jalali year), statement_cur (this year), category.
-- Clause 6: last year's account statement not computed, or unpaid debt in
-- it -> blocked until a branch debt slip is paid.
function M.preconditions(v)
  local today = cal.jalali(now())
  local r = {
    eligible = true, ineligible_reason = null, blocked = false, block_reason = null,
    debt_rials = 0, current_year = today.year, statement_year = today.year - 1,
  }
  local person = v.person_result and v.person_result.person
  if not (v.person_result and v.person_result.found) or person == nil then
    r.eligible = false; r.ineligible_reason = "not-found"; return r
  end
  if person.mobile and person.mobile ~= "" then r.mobile = person.mobile end
  r.branch = person.branch
  r.insurance_type = person.insurance_type
  if person.insurance_type ~= "voluntary" and person.insurance_type ~= "self-employed" then
    r.eligible = false; r.ineligible_reason = "not-voluntary-or-self-employed"; return r
  end
  if not categories_ok(v.category) then
    r.eligible = false; r.ineligible_reason = "unknown-category"; return r
  end
  if (person.insurance_type == "voluntary") ~= (v.category == "voluntary") then
    r.eligible = false; r.ineligible_reason = "category-mismatch"; return r
  end
  local st = v.statement_last
  if st == nil or not st.found or st.months == nil or #st.months == 0 then
    r.blocked = true; r.block_reason = "statement-missing"
  elseif st.balance_rials < 0 then
    r.blocked = true; r.block_reason = "debt"; r.debt_rials = -st.balance_rials
  end
  -- first month of this year not yet fully paid
  local paid = {}
  local cur = v.statement_cur
  if cur and cur.months then
    for _, row in ipairs(cur.months) do
      if row.paid_rials >= row.due_rials and row.paid_rials > 0 then paid[row.period] = true end
    end
  end
  local first = nil
  for m = 1, 12 do
    if not paid[M.period(today.year, m)] then first = m; break end
  end
  if first == nil then
    r.first_period = null; r.max_months = 0
  else
    r.first_period = M.period(today.year, first)
    -- clause 3: from one month up to Esfand of the current year, no further
    r.max_months = 12 - first + 1
    r.last_allowed_period = M.period(today.year, 12)
  end
  r.slip_seq = 0
  return r
end

local function slip_expiry(y)
  local p = M.params_for(y)
  return cal.format(cal.add(now(), "P" .. p.slip_valid_days .. "D"))
end

-- Clause 3 and 4: compute the slip for `months` months from first_period.
-- Channel agency adds the agency fee (paid by the insured, recorded apart
-- from the premium that goes to the organisation).
function M.compute(v)
  local r = { period_error = null }
  local months = v.months
  if math.type(months) ~= "integer" or months < 1 or months > v.max_months then
    r.period_ok = false
    r.period_error = string.format("months must be 1..%d (up to Esfand %d)", v.max_months, v.current_year)
    return r
  end
  r.period_ok = true
  local y, m = M.parse_period(v.first_period)
  local periods, total = {}, 0
  for i = 1, months do
    local amount, rate, base, days = M.month_premium(v.category, v.wage_daily_rials, y, m)
    periods[#periods + 1] = { period = M.period(y, m), days = days, rate_permille = rate,
                              daily_base_rials = base, premium_rials = amount }
    total = total + amount
    if i < months then y, m = M.next_period(y, m) end
  end
  local today = cal.jalali(now())
  local p, pyear = M.params_for(today.year)
  r.periods = periods
  r.period_from = v.first_period
  r.period_to = M.period(y, m)
  r.premium_rials = total
  r.params_year = pyear
  if v.channel == "agency" then
    r.agency_fee_rials = p.agency_fee_rials
    r.agency_fee_confirmed = p.agency_fee_confirmed
  else
    r.agency_fee_rials = 0
  end
  r.total_payable_rials = total + r.agency_fee_rials
  r.slip_seq = (v.slip_seq or 0) + 1
  r.payment_id = string.format("PS-%s-%s-%s-%d", v.national_id, r.period_from, r.period_to, r.slip_seq)
  -- the bank confirms the premium only: the agency collects its fee itself
  r.slip_amount = total
  r.amount_rials = total
  r.slip_expires = slip_expiry(today.year)
  return r
end

-- Clause 6: the branch issues a slip for the past periods' debt.
function M.debt_slip(v)
  local today = cal.jalali(now())
  local r = {}
  if math.type(v.debt_amount_rials) ~= "integer" or v.debt_amount_rials <= 0 then
    error("debt_amount_rials must be a positive whole number of Rials")
  end
  r.debt_seq = (v.debt_seq or 0) + 1
  r.payment_id = string.format("PD-%s-%d-%d", v.national_id, v.statement_year, r.debt_seq)
  r.slip_amount = v.debt_amount_rials
  r.amount_rials = v.debt_amount_rials
  r.slip_expires = slip_expiry(today.year)
  return r
end

function M.record_debt_payment(v)
  return { debt_paid = true, debt_bank_ref = v.bank_ref, debt_paid_at = v.paid_at,
           blocked = false, block_reason = null, debt_rials = 0 }
end

-- Clause 3: the bank's confirmation records the payment.
function M.record_payment(v)
  local ok = v.amount_rials == v.slip_amount
  local paid = {}
  if ok then
    for _, p in ipairs(v.periods) do paid[#paid + 1] = p.period end
  end
  return { payment_ok = ok, paid_periods = paid, paid_bank_ref = v.bank_ref,
           paid_through = ok and v.period_to or null }
end

--------------------------------------------------------------------------------
-- portal-credentials (clauses 2, 3 and 7)

-- Whoever comes to the branch: the insured, or an attorney with a legal power
-- of attorney. Returns request_ok and request_error.
function M.credential_request(v)
  local r = { request_ok = true, request_error = null }
  local function bad(why) r.request_ok = false; r.request_error = why; return r end
  if not validate.national_id(v.national_id or "") then return bad("national_id") end
  if v.identity_verified ~= true then return bad("identity-not-verified") end
  if v.requested_by == "attorney" then
    if not validate.national_id(v.attorney_national_id or "") then return bad("attorney_national_id") end
    if v.attorney_national_id == v.national_id then return bad("attorney-is-the-insured") end
    if type(v.poa_number) ~= "string" or v.poa_number == "" then return bad("poa_number") end
    if type(v.poa_date) ~= "string" or v.poa_date == "" then return bad("poa_date") end
    r.collected_by = "attorney"
    r.collected_by_fa = "وکیل قانونی بیمه‌شده"
  elseif v.requested_by == "self" then
    r.collected_by = "insured"
    r.collected_by_fa = "خود بیمه‌شده"
  else
    return bad("requested_by")
  end
  if type(v.secretariat_no) ~= "string" or v.secretariat_no == "" then return bad("secretariat_no") end
  return r
end

-- The officer records the principal created with `ravand principal add` and
-- the id of the token from `ravand principal token` -- never the token or any
-- password. A value that looks like a secret is refused.
function M.credential_issued(v)
  local r = { issued_ok = true, issue_error = null }
  local u = v.username or ""
  if not u:match("^[%w%._%-]+$") or #u > 64 then
    r.issued_ok = false; r.issue_error = "username"; return r
  end
  if u:find("rvt_", 1, true) then
    r.issued_ok = false; r.issue_error = "secret-in-username"; return r
  end
  if math.type(v.token_id) ~= "integer" or v.token_id <= 0 then
    r.issued_ok = false; r.issue_error = "token_id"; return r
  end
  r.credentials = {
    username = u, token_id = v.token_id, issued_on = M.jdate(now()),
    collected_by = v.collected_by, supervised_by_head = v.head_approved == true,
  }
  return r
end

return M
