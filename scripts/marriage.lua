-- scripts/marriage.lua -- rules of the marriage grant paid without a request
-- (directive 003, processes/marriage-grant.bpmn and marriage-objection.bpmn).
-- Every figure lives in the dated parameter files params/marriage_*.lua.
local M = {}

-- Dated parameter sets, oldest first. The set in force on a day is the newest
-- whose effective_from is not after it.
local SETS = {
  require("params.marriage_1404_01_01"),
}

local function jdate_key(s)          -- "1404/06/15" -> 14040615
  local y, m, d = tostring(s or ""):match("^(%d%d%d%d)[/-](%d%d?)[/-](%d%d?)$")
  if not y then return nil end
  return tonumber(y) * 10000 + tonumber(m) * 100 + tonumber(d), tonumber(y), tonumber(m), tonumber(d)
end

local function today_key()
  local j = cal.jalali(now())
  return j.year * 10000 + j.month * 100 + j.day, j
end

-- each set's effective_from as a number, once (every case asks params_on)
local FROM = {}
for i, s in ipairs(SETS) do
  FROM[i] = jdate_key(s.effective_from)
  if FROM[i] == nil then error("marriage: bad effective_from " .. tostring(s.effective_from)) end
end

local function params_on(key)
  local p
  for i, s in ipairs(SETS) do
    if FROM[i] <= key then p = s end
  end
  if p == nil then error("marriage: no parameter set in force on " .. tostring(key)) end
  return p
end

-- The figures a case needs, recorded in the case (variable mg) so that a
-- reviewer sees which parameter set decided it.
function M.params(v)
  local p = params_on((today_key()))
  return { mg = {
    effective_from = p.effective_from,
    window_months = p.window_months,
    earnings_months = p.earnings_months,
    min_paid_days = p.min_paid_days,
  } }
end

-- Reason codes and the texts the person reads (the same texts are the
-- rv:status of the end events in marriage-grant.bpmn).
M.REASONS = {
  NOT_FOUND      = "اطلاعات بیمه‌ای شما در سامانه یافت نشد",
  ROLE           = "بر اساس ضوابط فعلی، مستمری‌بگیران و غیربیمه‌شدگان مشمول کمک هزینه ازدواج نیستند",
  TEMPORARY      = "ازدواج موقت مشمول کمک هزینه ازدواج نیست",
  DAYS           = "سابقه پرداخت حق بیمه در پنج سال پیش از ازدواج کمتر از ۷۲۰ روز است",
  NOT_INSURED_ON = "در تاریخ ازدواج، بیمه‌پردازی شما قطع بوده است",
  ALREADY_PAID   = "کمک هزینه ازدواج قبلاً به شما پرداخت شده است",
  DEADLINE       = "مهلت استفاده از کمک هزینه ازدواج برای این ازدواج گذشته است",
}

local function verdict(code, extra)
  local r = { eligible = code == nil, reason_code = code or "OK",
              reason_text = code and M.REASONS[code] or "واجد شرایط" }
  if extra then for k, x in pairs(extra) do r[k] = x end end
  return r
end

local function months_between(fy, fm, ty, tm) return (ty * 12 + tm) - (fy * 12 + fm) end

-- Article 85. Reads: person_found, person, marriage_type, marriage_date,
-- window {paid_days, paid_in_to}, benefits [{kind}].
function M.assess(v)
  local key, y, m = jdate_key(v.marriage_date)
  if key == nil then error("marriage.assess: bad marriage_date " .. tostring(v.marriage_date)) end
  local p = params_on(key)
  local w = v.window or {}
  local days = tonumber(w.paid_days) or 0
  local extra = { paid_days = days, params_from = p.effective_from }
  if v.person_found ~= true or type(v.person) ~= "table" then return verdict("NOT_FOUND", extra) end
  if p.require_permanent and v.marriage_type ~= "permanent" then return verdict("TEMPORARY", extra) end
  if not p.eligible_roles[v.person.role or ""] then return verdict("ROLE", extra) end
  if p.first_marriage_only and type(v.benefits) == "table" then
    for _, b in ipairs(v.benefits) do
      if b.kind == "marriage-grant" then return verdict("ALREADY_PAID", extra) end
    end
  end
  if p.claim_deadline_months then
    local _, t = today_key()
    if months_between(y, m, t.year, t.month) > p.claim_deadline_months then
      return verdict("DEADLINE", extra)
    end
  end
  if days < p.min_paid_days then return verdict("DAYS", extra) end
  if p.require_insured_on_date and w.paid_in_to ~= true then return verdict("NOT_INSURED_ON", extra) end
  return verdict(nil, extra)
end

-- Sheba and mobile: from the form of the contact task when filled in
-- (entered_sheba, entered_mobile), else from the records person.
-- Counts the month-end rounds a case has waited (contact_rounds).
local function norm_mobile(s)
  if type(s) ~= "string" then return nil end
  s = s:gsub("[%s%-]", "")
  if s:sub(1, 3) == "+98" then s = "0" .. s:sub(4)
  elseif s:sub(1, 4) == "0098" then s = "0" .. s:sub(5)
  elseif #s == 10 and s:sub(1, 1) == "9" then s = "0" .. s end
  return s
end
local function norm_sheba(s)
  if type(s) ~= "string" then return nil end
  return (s:gsub("[%s%-]", ""):upper())
end

-- The finance period of a payment is the Jalali month whose month-end batch
-- pays it: the month in which the case starts waiting for that month end.
-- (The month-end timer fires just after 23:59:59 Tehran, i.e. already in the
-- next month, so the period cannot be taken from the clock at payment time.)
local function this_month()
  local j = cal.jalali(now())
  return string.format("%04d-%02d", j.year, j.month)
end

local function contact_of(v)
  local person = type(v.person) == "table" and v.person or {}
  local sheba = norm_sheba(v.entered_sheba ~= nil and v.entered_sheba ~= null and v.entered_sheba or person.sheba)
  local mobile = norm_mobile(v.entered_mobile ~= nil and v.entered_mobile ~= null and v.entered_mobile or person.mobile)
  local sheba_ok, mobile_ok = validate.sheba(sheba), validate.mobile(mobile)
  return {
    sheba = sheba_ok and sheba or null,
    mobile = mobile_ok and mobile or null,     -- rv:sms sends only to a valid number
    sheba_ok = sheba_ok, mobile_ok = mobile_ok,
    contact_ok = sheba_ok and mobile_ok,
    entered_sheba = null, entered_mobile = null,
  }
end

-- Before a month-end wait: check the contact and fix the batch month.
function M.contact(v)
  local r = contact_of(v)
  r.batch_period = this_month()
  return r
end

-- At the month end (the timer has fired): check again, keep the batch month.
function M.recheck(v)
  return contact_of(v)
end

-- At a month end without a complete contact: wait another month?
function M.wait_more(v)
  local p = params_on((today_key()))
  local rounds = (tonumber(v.contact_rounds) or 0) + 1
  return { contact_rounds = rounds, wait_more = rounds < p.contact_wait_months,
           batch_period = this_month() }
end

-- Amount: one month's average wage = earnings of the 24 months before the
-- marriage / 24, at least the minimum monthly wage of the marriage year.
-- Integer Rials. Reads: marriage_date, earnings {earnings_rials}.
function M.amount(v)
  local key, y = jdate_key(v.marriage_date)
  local p = params_on(key)
  local earned = tonumber((v.earnings or {}).earnings_rials) or 0
  local avg = math.tointeger(earned // p.divisor)
  local grant, floor_applied = avg, false
  if p.apply_min_wage_floor then
    local daily = p.min_daily_wage[y]
    if daily == nil then
      error("marriage.amount: no minimum daily wage parameter for year " .. y ..
            " (params/marriage_*.lua, min_daily_wage)")
    end
    local floor = daily * p.floor_month_days
    if grant < floor then grant, floor_applied = floor, true end
  end
  return { grant_rials = grant, average_wage_rials = avg, floor_applied = floor_applied,
           grant_period = v.batch_period or this_month() }
end

-- Self-registration in the portal (clause 2): check what the person typed.
function M.check_declaration(v)
  local errs = {}
  local key = jdate_key(v.marriage_date)
  if key == nil then errs[#errs + 1] = "تاریخ ازدواج (به شکل ۱۴۰۴/۰۶/۱۵)"
  else
    local _, y, m, d = jdate_key(v.marriage_date)
    local ok = pcall(cal.gregorian, y, m, d)
    if not ok or key > (today_key()) then errs[#errs + 1] = "تاریخ ازدواج" end
  end
  if not validate.national_id(v.national_id) then errs[#errs + 1] = "کد ملی بیمه‌شده" end
  if not validate.national_id(v.spouse_national_id) or v.spouse_national_id == v.national_id then
    errs[#errs + 1] = "کد ملی همسر"
  end
  if type(v.certificate_no) ~= "string" or not v.certificate_no:match("^[%w/%-]+$") or #v.certificate_no > 32 then
    errs[#errs + 1] = "شماره سند ازدواج"
  end
  local p = params_on((today_key()))
  return {
    declaration_ok = #errs == 0,
    declaration_errors = table.concat(errs, "، "),
    registry_deadline = cal.add(now(), "P" .. p.registry_wait_days .. "D"),
  }
end

-- Objection (clause 3): the images are references into the portal's
-- document store; the mobile is where the outcome is sent.
function M.check_objection(v)
  local errs = {}
  local function ref(x) return type(x) == "string" and #x > 0 and #x <= 256 end
  if not ref(v.certificate_image) then errs[#errs + 1] = "تصویر عقدنامه" end
  if not ref(v.id_marriage_page_image) then errs[#errs + 1] = "تصویر صفحه ازدواج شناسنامه" end
  local mobile = norm_mobile(v.entered_mobile)
  if not validate.mobile(mobile) then errs[#errs + 1] = "تلفن همراه" end
  if jdate_key(v.marriage_date) == nil then errs[#errs + 1] = "تاریخ ازدواج" end
  return { objection_ok = #errs == 0, objection_errors = table.concat(errs, "، "),
           mobile = validate.mobile(mobile) and mobile or null }
end

return M
