-- scripts/voluntary.lua -- voluntary insurance continuation contract, online
-- (directive 001, processes/voluntary-contract.bpmn).
--
-- Figures: scripts/params/voluntary_YYYY.lua (contract rules) and
-- scripts/params/premium_YYYY.lua (wage and rate), each in force from
-- 1 Farvardin of its year until a later file replaces it.
-- Functions get the visible variables and return an object of new variables.

local premium = require("premium")

local M = {}

M.PARAM_YEARS = { 1403, 1404 }

function M.params_for(y)
  local chosen
  for _, py in ipairs(M.PARAM_YEARS) do
    if py <= y then chosen = py end
  end
  if chosen == nil then error("no voluntary-contract parameters in force for year " .. tostring(y)) end
  return require("params.voluntary_" .. chosen), chosen
end

local function months_index(y, m) return y * 12 + (m - 1) end

-- ms + n Jalali months (same time of day; the day is clamped to the month's end)
function M.add_jalali_months(ms, n)
  local j = cal.jalali(ms)
  local offset = ms - cal.gregorian(j.year, j.month, j.day)
  local idx = months_index(j.year, j.month) + n
  local y, m = idx // 12, idx % 12 + 1
  local d = math.min(j.day, cal.month_days(y, m))
  return cal.gregorian(y, m, d) + offset
end

-- Tehran midnight starting the day of ms
local function day_start(ms)
  local j = cal.jalali(ms)
  return cal.gregorian(j.year, j.month, j.day)
end

local function parse_jdate(s)
  local y, m, d = tostring(s):match("^(%d%d%d%d)[/-](%d%d)[/-](%d%d)$")
  if not y then return nil end
  return tonumber(y), tonumber(m), tonumber(d)
end

-- Clause 1 (and the regulation): eligibility from the records.
-- Reads person_result (records person) and contrib_result (records contributions).
function M.eligibility(v)
  local today = cal.jalali(now())
  local p, pyear = M.params_for(today.year)
  local r = { eligible = false, ineligible_reason = null, params_year = pyear }
  local person = v.person_result and v.person_result.person
  if not (v.person_result and v.person_result.found) or person == nil then
    r.ineligible_reason = "not-found"; return r
  end
  r.mobile = person.mobile
  r.branch = person.branch
  r.full_name = (person.first_name or "") .. " " .. (person.last_name or "")
  local by, bm, bd = parse_jdate(person.birth_date)
  r.age = by and cal.age(cal.gregorian(by, bm, bd), now()) or null
  -- paid days: each month of each span counts min(days, month length), once
  local days_of = {}
  local last_idx, last_wage = nil, 0
  for _, c in ipairs((v.contrib_result and v.contrib_result.contributions) or {}) do
    local fy, fm = premium.parse_period(c.from)
    local ty, tm = premium.parse_period(c.to)
    local y, m = fy, fm
    while months_index(y, m) <= months_index(ty, tm) do
      local k = months_index(y, m)
      local d = math.min(c.days_per_month, cal.month_days(y, m))
      if (days_of[k] or 0) < d then days_of[k] = d end
      y, m = premium.next_period(y, m)
    end
    local ti = months_index(ty, tm)
    if last_idx == nil or ti > last_idx or (ti == last_idx and c.wage_rials > last_wage) then
      last_idx, last_wage = ti, c.wage_rials
    end
  end
  local paid_days = 0
  for _, d in pairs(days_of) do paid_days = paid_days + d end
  r.paid_days = paid_days
  r.last_wage_rials = last_wage
  if last_idx == nil then
    r.gap_months = null
    r.ineligible_reason = "no-contributions"; return r
  end
  local now_idx = months_index(today.year, today.month)
  r.last_paid_period = premium.period(last_idx // 12, last_idx % 12 + 1)
  r.gap_months = now_idx - last_idx - 1
  if person.insurance_type == "voluntary" then
    r.ineligible_reason = "already-voluntary"; return r
  end
  if last_idx >= now_idx then
    r.ineligible_reason = "still-insured"; return r
  end
  if paid_days < p.min_paid_days then
    r.ineligible_reason = "record-too-short"; return r
  end
  if r.age ~= null and r.age > p.max_age and paid_days < p.no_age_limit_paid_days
     and paid_days < (r.age - p.max_age) * 365 then
    r.ineligible_reason = "age"; return r
  end
  r.eligible = true
  return r
end

-- The wage base the applicant asks for (monthly, Rials): within the minimum
-- and maximum insurable wage of the year (30-day month).
local function check_wage(wage, v, y)
  local pp = premium.params_for(y)
  local vp = M.params_for(y)
  local lo = pp.min_daily_wage_rials * 30
  local hi = pp.min_daily_wage_rials * pp.max_daily_multiplier * 30
  if math.type(wage) ~= "integer" then return false, "wage must be a whole number of Rials" end
  if wage < lo then return false, string.format("wage below the minimum %d", lo) end
  if wage > hi then return false, string.format("wage above the maximum %d", hi) end
  if vp.max_raise_over_last_wage_permille and vp.raise_cap_min_paid_days
     and (v.paid_days or 0) >= vp.raise_cap_min_paid_days and (v.last_wage_rials or 0) > 0 then
    local cap = v.last_wage_rials * (1000 + vp.max_raise_over_last_wage_permille) // 1000
    if wage > cap then return false, string.format("wage above the allowed raise %d", cap) end
  end
  return true, null
end

-- After the applicant's data check (clause 1): documents (clause 3), the wage
-- base, the medical-examination exemption and the contract terms.
function M.check_request(v)
  local today = cal.jalali(now())
  local p = M.params_for(today.year)
  local r = {}
  local docs = {}
  if v.age ~= null and v.age ~= nil and v.age < p.growth_certificate_below_age then
    docs[#docs + 1] = "گواهی رشد"
  end
  if v.under_guardianship == true then docs[#docs + 1] = "قیم‌نامه" end
  r.needs_documents = #docs > 0
  r.documents_needed = table.concat(docs, "، ")
  local ok, why = check_wage(v.requested_wage_rials, v, today.year)
  r.wage_ok = ok
  r.wage_error = why
  r.exempt = (v.paid_days or 0) >= p.exam_exempt_min_days
             and v.gap_months ~= null and v.gap_months ~= nil
             and v.gap_months <= p.exam_exempt_max_gap_months
  if ok then
    r.wage_base_rials = v.requested_wage_rials
    local pp = premium.params_for(today.year)
    r.premium_rate_permille = pp.rates_permille.voluntary
    r.premium_rate_percent = pp.rates_permille.voluntary // 10
    r.monthly_premium_rials = v.requested_wage_rials * pp.rates_permille.voluntary // 1000
    r.start_date_j = premium.jdate(now())
  end
  return r
end

-- The premium of one slip for Jalali month (y, m) of the contract, from day
-- `from_day` (the start date in the first month) to the month's end.
local function slip_premium(wage_month, y, m, from_day)
  local days = cal.month_days(y, m) - (from_day or 1) + 1
  local daily = wage_month // 30
  local amount = premium.month_premium("voluntary", daily, y, m, days)
  return amount, days
end

local function issue(v, r, y, m, from_day, due_iso)
  local amount, days = slip_premium(r.wage_base_rials or v.wage_base_rials, y, m, from_day)
  r.slip_seq = (v.slip_seq or 0) + 1
  r.slip_period = premium.period(y, m)
  r.slip_days = days
  r.payment_id = string.format("%s-%d", r.contract_no or v.contract_no, r.slip_seq)
  r.slip_amount = amount
  -- the bank adapter checks a waiting instance's amount_rials
  r.amount_rials = amount
  r.slip_due = due_iso
  return r
end

-- Clause 1/2: the contract is concluded; clause 5: payment deadline; clause 2:
-- examination deadline and slip horizon for non-exempt applicants.
function M.conclude(v)
  local t = now()
  local j = cal.jalali(t)
  local p = M.params_for(j.year)
  local r = {}
  r.contract_no = string.format("VC%04d%02d%02d-%s", j.year, j.month, j.day, v.national_id)
  r.contract_date = cal.format(t)
  r.contract_date_j = premium.jdate(t)
  r.contract_status = "awaiting-payment"
  r.payment_deadline = cal.format(cal.add(t, "P" .. p.payment_deadline_days .. "D"))
  r.payment_deadline_j = premium.jdate(cal.add(t, "P" .. p.payment_deadline_days .. "D"))
  if v.exempt then
    r.exam_deadline = null
    r.slip_horizon_end = null
  else
    local exam = M.add_jalali_months(t, p.exam_deadline_months)
    r.exam_deadline = cal.format(exam)
    r.exam_deadline_j = premium.jdate(exam)
    r.slip_horizon_end = cal.format(day_start(M.add_jalali_months(t, p.slip_horizon_months)))
    r.inpatient_before_exam = p.inpatient_before_exam
  end
  r.wage_changes = 0
  r.premium_records = {}
  issue(v, r, j.year, j.month, j.day, r.payment_deadline)
  return r
end

-- Clause 4: after the contract and before payment the wage base may change;
-- a new slip (new payment id) replaces the old one, same deadline.
function M.change_wage(v)
  local today = cal.jalali(now())
  local ok, why = check_wage(v.new_wage_rials, v, today.year)
  local r = { wage_ok = ok, wage_error = why }
  if not ok then return r end
  r.wage_base_rials = v.new_wage_rials
  r.monthly_premium_rials = v.new_wage_rials * v.premium_rate_permille // 1000
  r.wage_changes = (v.wage_changes or 0) + 1
  local y, m = premium.parse_period(v.slip_period)
  local cj = cal.jalali(cal.parse(v.contract_date))
  local from_day = (cj.year == y and cj.month == m) and cj.day or 1
  issue(v, r, y, m, from_day, v.slip_due)
  return r
end

-- Clause 5: the bank confirmed receipt -> premium record, medical services at once.
function M.record_payment(v)
  local recs = {}
  for _, x in ipairs(v.premium_records or {}) do recs[#recs + 1] = x end
  recs[#recs + 1] = { period = v.slip_period, days = v.slip_days, amount_rials = v.amount_rials,
                      bank_ref = v.bank_ref, paid_at = v.paid_at, payment_id = v.payment_id }
  local r = { premium_records = recs, paid_through = v.slip_period,
              payment_ok = v.amount_rials == v.slip_amount }
  if v.exempt then
    r.contract_status = "active"
    r.medical_services = "all"
  else
    r.contract_status = "active-exam-pending"
    -- clause 2 note: inpatient care before the examination is a parameter
    r.medical_services = v.inpatient_before_exam and "all" or "outpatient"
  end
  return r
end

-- Clause 2: the next month's slip, only within 2 months of the contract date
-- while the examination result is pending.
function M.next_slip(v)
  local y, m = premium.parse_period(v.paid_through)
  y, m = premium.next_period(y, m)
  local first_day = cal.gregorian(y, m, 1)
  local horizon = cal.parse(v.slip_horizon_end)
  local r = {}
  if first_day >= horizon then
    r.slip_allowed = false
    r.slip_refusal = string.format("slips only for months starting before %s until the medical examination", premium.jdate(horizon))
    return r
  end
  r.slip_allowed = true
  r.slip_refusal = null
  local today = cal.jalali(now())
  local pp = premium.params_for(today.year)
  issue(v, r, y, m, 1, cal.format(cal.add(now(), "P" .. pp.slip_valid_days .. "D")))
  return r
end

-- The examining centre's result (message medical-exam-result) or the branch's
-- settlement of an overdue case.
function M.exam_outcome(v)
  local res = v.exam_result or v.settlement
  local r = { exam_settled = true }
  if res == "fit" or res == "exam-done-fit" then
    r.contract_status = "active"
    r.medical_services = "all"
    r.exam_ok = true
  else
    r.contract_status = "terminated"
    r.medical_services = "none"
    r.exam_ok = false
  end
  return r
end

return M
