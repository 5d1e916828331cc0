-- scripts/inquiry.lua -- rules of the insurance-coverage / pension status inquiry
-- (directive 002): processes/coverage-inquiry.bpmn (Part B, individuals) and
-- processes/org-onboarding.bpmn (Part A, outside bodies). Figures: params/inquiry_*.lua.
-- Access codes are never made here: Lua has no randomness and must not see a
-- code in clear. The `inquiry` adapter generates it, stores only its hash and
-- hands it to the person once (docs/directives/inquiry.md, "What the API needs").
local M = {}

local SETS = {
  require("params.inquiry_1405_01_01"),
}

local function today()
  local j = cal.jalali(now())
  return j, j.year * 10000 + j.month * 100 + j.day
end

local function jkey(s)
  local y, m, d = tostring(s or ""):match("^(%d%d%d%d)[/-](%d%d?)[/-](%d%d?)$")
  if not y then return nil end
  return tonumber(y) * 10000 + tonumber(m) * 100 + tonumber(d)
end

local function params()
  local _, key = today()
  local p
  for _, s in ipairs(SETS) do if jkey(s.effective_from) <= key then p = s end end
  if p == nil then error("inquiry: no parameter set in force") end
  return p
end

local function jtext(ms)
  local j = cal.jalali(ms)
  return string.format("%04d/%02d/%02d", j.year, j.month, j.day)
end

--- Part B: a person's status document ------------------------------------------------

-- Before the records lookups: today's Jalali date and the window.
function M.prepare(v)
  local p = params()
  return { today = jtext(now()), lookback_months = p.lookback_months, params_from = p.effective_from }
end

-- The document: what an outside body may read with the code. Only status
-- facts, no contribution amounts or bank data.
-- The status facts (the same for a document by code and a direct inquiry).
local function status_facts(v, p)
  local person = type(v.person) == "table" and v.person or {}
  local cov = type(v.coverage) == "table" and v.coverage or {}
  local insured_now = cov.paid_in_to == true
  local coverage_status
  if person.role == "pensioner" then coverage_status = "pensioner"
  elseif insured_now then coverage_status = "insured"
  else coverage_status = "not_insured" end
  local labels = { pensioner = "مستمری‌بگیر", insured = "بیمه‌شده دارای پوشش بیمه‌ای فعال",
                   not_insured = "فاقد پوشش بیمه‌ای فعال در ماه جاری" }
  return {
    national_id = v.national_id,
    name = (person.first_name or "") .. " " .. (person.last_name or ""),
    as_of = jtext(now()),
    coverage_status = coverage_status,
    coverage_text = labels[coverage_status],
    insurance_type = person.insurance_type or null,
    pension_no = person.pension_no or null,
    paid_days_last_months = tonumber(cov.paid_days) or 0,
    months_window = p.lookback_months,
    purpose = v.purpose,
  }
end

function M.build_document(v)
  local p = params()
  local valid_until = cal.add(now(), "P" .. p.document_valid_days .. "D")
  return {
    document = status_facts(v, p),
    valid_until = valid_until,
    valid_until_text = jtext(valid_until),
    single_use = p.single_use,
    max_fetches = p.max_fetches,
    code_bits = p.code_bits,
    fetch_count = 0,
  }
end

-- A direct status inquiry by an outside body (Part A actors: "direct status
-- inquiries allowed by its agreement"; processes/status-inquiry.bpmn): the same
-- facts as the document, with the body and its reference (how long the body may
-- read it is the model's timer, not a directive figure).
function M.status_answer(v)
  local facts = status_facts(v, params())
  facts.organisation = v.organisation
  facts.reference = v.reference
  return { answer = facts }
end

-- Each audited fetch reported by the API (message inquiry-fetched).
function M.record_fetch(v)
  local fetches = type(v.fetches) == "table" and v.fetches or {}
  fetches[#fetches + 1] = { organisation = v.fetch_organisation, agreement = v.fetch_agreement,
                            user = v.fetch_user, at = v.fetch_at }
  return { fetches = fetches, fetch_count = #fetches }
end

--- Part A: an outside body ----------------------------------------------------------------

function M.check_application(v)
  local errs = {}
  if type(v.organisation) ~= "string" or not v.organisation:match("^[%w%-_]+$") or #v.organisation > 64 then
    errs[#errs + 1] = "شناسه دستگاه"
  end
  if type(v.organisation_name) ~= "string" or #v.organisation_name == 0 then errs[#errs + 1] = "نام دستگاه" end
  local m = v.contact_mobile
  if type(m) == "string" and m:sub(1, 3) == "+98" then m = "0" .. m:sub(4) end
  if not validate.mobile(m) then errs[#errs + 1] = "تلفن همراه رابط" end
  return { application_ok = #errs == 0, application_errors = table.concat(errs, "، "),
           mobile = validate.mobile(m) and m or null,
           legacy = type(v.legacy_agreement_no) == "string" and #v.legacy_agreement_no > 0 }
end

-- The deputy's agreement form: dates are ISO (form type date); validity bounded
-- (not for an agreement of the earlier circular, clause 5: it keeps its own term).
function M.check_agreement(v)
  local p = params()
  local errs = {}
  local ok1, from = pcall(cal.parse, v.valid_from or "")
  local ok2, to = pcall(cal.parse, v.valid_to or "")
  if type(v.agreement_no) ~= "string" or not v.agreement_no:match("^[%w/%-]+$") then errs[#errs + 1] = "شماره تفاهم‌نامه" end
  if not ok1 or not ok2 or to <= from then errs[#errs + 1] = "تاریخ اعتبار"
  elseif v.legacy ~= true and to > cal.add(from, "P" .. p.agreement_max_years .. "Y") then errs[#errs + 1] = "مدت اعتبار بیش از حد مجاز"
  elseif to <= now() then errs[#errs + 1] = "تاریخ پایان گذشته است" end
  return { agreement_ok = #errs == 0, agreement_errors = table.concat(errs, "، "),
           agreement_until = ok2 and to or null }
end

-- IT management's access-grant form: users [{name, national_id, mobile}].
function M.check_users(v)
  local p = params()
  local errs = {}
  local users = type(v.users) == "table" and v.users or {}
  if #users == 0 then errs[#errs + 1] = "فهرست کاربران خالی است" end
  if #users > p.max_users_per_body then errs[#errs + 1] = "تعداد کاربران بیش از حد مجاز" end
  local seen = {}
  for i, u in ipairs(users) do
    if type(u) ~= "table" or not validate.national_id(u.national_id) then errs[#errs + 1] = "کد ملی کاربر " .. i
    elseif seen[u.national_id] then errs[#errs + 1] = "کاربر تکراری " .. i
    else seen[u.national_id] = true end
    if type(u) == "table" and not validate.mobile(u.mobile) then errs[#errs + 1] = "تلفن همراه کاربر " .. i end
  end
  return { users_ok = #errs == 0, users_errors = table.concat(errs, "، "), user_count = #users }
end

return M
