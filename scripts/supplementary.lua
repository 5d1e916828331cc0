-- scripts/supplementary.lua -- online registration / cancellation of the
-- supplementary health and life insurance of (non-colleague) pensioners and
-- their dependents (directive 000, processes/supplementary-insurance.bpmn,
-- docs/directives/supplementary-insurance.md).
--
-- Every window, amount and deadline comes from the dated parameter files
-- scripts/params/supplementary_YYYY.lua, one per contract period (YYYY = the
-- Jalali year the contract starts in, on 1 Azar). A new period announced by
-- its directive (clause 15) = a new file + one line in M.PERIODS.
--
-- Functions called with rv:function get the instance's visible variables and
-- return an object whose keys become process variables. Dates are Jalali
-- "yyyy/mm/dd" (they compare as strings), months "yyyy-mm", money integer Rials.

local M = {}

-- Contract periods that have a parameter file, oldest first.
M.PERIODS = { "1402", "1403", "1404" }

-- Persian labels of the supplementary status (step 3, "دارد" / "ندارد") and of
-- the actions the pensioner can choose.
M.STATUS_LABEL = { has = "دارد", has_not = "ندارد" }
M.ACTION_LABEL = { register = "ثبت‌نام", cancel = "انصراف" }
M.RELATION_LABEL = {
  self = "مستمری‌بگیر اصلی", spouse = "همسر", husband = "همسر", son = "پسر",
  daughter = "دختر", father = "پدر", mother = "مادر",
}

local function present(v)
  return v ~= nil and v ~= null and v ~= ""
end

function M.params(period)
  return require("params.supplementary_" .. period)
end

-- Jalali "yyyy/mm/dd" of an instant (Tehran).
function M.jdate(ms)
  local j = cal.jalali(ms)
  return string.format("%04d/%02d/%02d", j.year, j.month, j.day)
end

local function parse_jdate(s)
  local y, m, d = tostring(s):match("^(%d%d%d%d)/(%d%d)/(%d%d)$")
  if not y then error("bad Jalali date '" .. tostring(s) .. "'") end
  return tonumber(y), tonumber(m), tonumber(d)
end

-- The period whose window contains the date, else the period whose contract
-- contains it (window closed), else none (no period announced yet).
-- Returns state ("open" | "closed" | "none"), params or nil.
function M.period_at(date)
  local contract_match
  for _, code in ipairs(M.PERIODS) do
    local p = M.params(code)
    if date >= p.window_from and date <= p.window_to then return "open", p end
    if date >= p.contract_from and date <= p.contract_to then contract_match = p end
  end
  if contract_match then return "closed", contract_match end
  return "none", nil
end

-- Start of the request: is a registration window open today?
-- Sets period_state and, when a period applies, its parameters.
function M.check_period(v)
  local today = M.jdate(now())
  local state, p = M.period_at(today)
  local out = { period_state = state, request_date = today }
  if p then
    out.period = p.period
    out.period_label = p.label
    out.window_from = p.window_from
    out.window_to = p.window_to
    out.premium_pensioner_rials = p.premium_pensioner_rials
    out.association_due = p.association_due
    out.branch_due = p.branch_due
    -- the draft (steps 1-4) can be submitted until the window's last day ends
    local y, m, d = parse_jdate(p.window_to)
    out.draft_deadline = cal.format(cal.add(cal.gregorian(y, m, d), "P1D"))
  end
  return out
end

-- Dependents listed in step 3: those whose dependency end date is empty or not
-- before the request date (clause 5, note). Returns listed, hidden.
function M.filter_dependents(deps, request_date)
  local listed, hidden = {}, {}
  for _, d in ipairs(deps or {}) do
    if present(d.dependency_end) and d.dependency_end < request_date then
      hidden[#hidden + 1] = { national_id = d.national_id, dependency_end = d.dependency_end }
    else
      listed[#listed + 1] = d
    end
  end
  return listed, hidden
end

local function status_of(s)
  if s == "has" then return "has" end
  return "has_not"            -- empty or unknown status counts as "has not"
end

local function person_row(nid, first, last, relation, dependency_end, status)
  status = status_of(status)
  local action = status == "has" and "cancel" or "register"
  return {
    national_id = nid,
    name = (first or "") .. " " .. (last or ""),
    relation = relation,
    relation_label = M.RELATION_LABEL[relation] or relation,
    dependency_end = present(dependency_end) and dependency_end or "",
    status = status,
    status_label = M.STATUS_LABEL[status],
    allowed_action = action,                 -- has -> cancel, has not -> register
    allowed_action_label = M.ACTION_LABEL[action],
  }
end

local function money(n)
  -- 4700000 -> "4,700,000"
  local s = tostring(n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  if out:sub(1, 1) == "," then out = out:sub(2) end
  return out
end

-- Step 1: the essential terms of the period's contract, from the parameters.
function M.terms(p)
  return {
    "قرارداد بیمه تکمیلی درمان و عمر یک‌ساله است و برای دوره " .. p.label
      .. " از " .. p.contract_from .. " تا " .. p.contract_to .. " اعتبار دارد.",
    "مهلت ثبت‌نام و انصراف در این دوره از " .. p.window_from .. " تا " .. p.window_to .. " است.",
    "سهم مستمری‌بگیر از حق بیمه هر نفر ماهانه " .. money(p.premium_pensioner_rials)
      .. " ریال است که از مستمری کسر می‌شود.",
    "ثبت‌نام فقط برای افرادی با وضعیت «ندارد» و انصراف فقط برای افرادی با وضعیت «دارد» ممکن است.",
    "افراد تبعی که تاریخ خاتمه کفالت آنان پیش از تاریخ درخواست است نمایش داده نمی‌شوند؛"
      .. " برای ثبت‌نام آنان ابتدا کفالت را در شعبه تعیین تکلیف کنید.",
    "درخواست پس از ثبت نهایی به کانون بازنشستگان و مستمری‌بگیران شهرستان و سپس به شعبه ارسال می‌شود.",
  }
end

-- After the records lookups: is the person a pensioner we can serve, and who is
-- listed in step 3 (the pensioner first, then the listed dependents)?
function M.assess(v)
  local out = { eligible = false }
  local p = v.person
  if not (v.person_found == true and type(p) == "table") then
    out.ineligible_reason = "not_found"
    return out
  end
  if p.role ~= "pensioner" then
    out.ineligible_reason = "not_pensioner"
    return out
  end
  local params = M.params(v.period)
  local listed, hidden = M.filter_dependents(v.dependents_all, v.request_date)
  local persons = { person_row(p.national_id, p.first_name, p.last_name, "self", "", p.supplementary) }
  for _, d in ipairs(listed) do
    persons[#persons + 1] = person_row(d.national_id, d.first_name, d.last_name, d.relation,
                                       d.dependency_end, d.supplementary)
  end
  out.eligible = true
  out.ineligible_reason = null
  out.mobile = present(p.mobile) and p.mobile or null
  out.full_name = (p.first_name or "") .. " " .. (p.last_name or "")
  out.pension_no = p.pension_no
  out.branch = p.branch
  out.county = p.county
  out.persons = persons
  out.hidden_dependents = hidden
  out.hidden_count = #hidden
  out.terms = M.terms(params)
  return out
end

-- Step 3 -> 4: check the pensioner's choices and compute the final statuses.
-- changes: array of {national_id, action} with action "register" | "cancel".
function M.check_changes(v)
  local errors = {}
  local function err(s) errors[#errors + 1] = s end
  local params = M.params(v.period)
  local by_id = {}
  for _, p in ipairs(v.persons or {}) do by_id[p.national_id] = p end
  local chosen = {}
  local changes = v.changes
  if type(changes) ~= "table" or #changes == 0 then
    err("هیچ تغییری انتخاب نشده است.")
    changes = {}
  end
  for i, c in ipairs(changes) do
    local p = type(c) == "table" and by_id[c.national_id] or nil
    if type(c) ~= "table" then
      err("ردیف " .. i .. " نامعتبر است.")
    elseif p == nil then
      err("فرد با کد ملی " .. tostring(c.national_id) .. " در فهرست افراد قابل انتخاب نیست.")
    elseif chosen[c.national_id] then
      err("برای فرد با کد ملی " .. c.national_id .. " بیش از یک عملیات انتخاب شده است.")
    elseif c.action ~= p.allowed_action then
      if c.action == "register" or c.action == "cancel" then
        err("برای " .. p.name .. " با وضعیت «" .. p.status_label .. "» فقط «"
            .. p.allowed_action_label .. "» ممکن است.")
      else
        err("عملیات «" .. tostring(c.action) .. "» نامعتبر است.")
      end
    else
      chosen[c.national_id] = c.action
    end
  end
  local final, n_reg, n_cancel, n_has = {}, 0, 0, 0
  for _, p in ipairs(v.persons or {}) do
    local a = chosen[p.national_id]
    local new = p.status
    if a == "register" then new = "has"; n_reg = n_reg + 1 end
    if a == "cancel" then new = "has_not"; n_cancel = n_cancel + 1 end
    if new == "has" then n_has = n_has + 1 end
    final[#final + 1] = {
      national_id = p.national_id, name = p.name, relation = p.relation,
      relation_label = p.relation_label, status = p.status, status_label = p.status_label,
      action = a or "none", action_label = a and M.ACTION_LABEL[a] or "",
      new_status = new, new_status_label = M.STATUS_LABEL[new],
    }
  end
  if #errors == 0 and params.dependents_require_principal and #final > 0 then
    local principal_new = final[1].new_status
    if principal_new ~= "has" and n_has > 0 then
      err("بیمه تکمیلی افراد تبعی بدون بیمه تکمیلی مستمری‌بگیر اصلی ممکن نیست.")
    end
  end
  local ok = #errors == 0
  return {
    changes_valid = ok,
    step3_errors = ok and null or errors,
    final_statuses = final,
    n_register = n_reg,
    n_cancel = n_cancel,
    -- the pensioner's monthly deduction after the change
    monthly_premium_rials = n_has * params.premium_pensioner_rials,
  }
end

local function add_months(y, m, k)
  local t = (y * 12 + (m - 1)) + k
  return t // 12, t % 12 + 1
end

-- The deduction months of a change accepted on `date`: from the month after
-- the acceptance (offset parameter) to the last month of the contract.
function M.deduction_months(params, date)
  local y, m = parse_jdate(date)
  local ey, em = parse_jdate(params.contract_to)
  local sy, sm = add_months(y, m, params.deduction_start_offset_months)
  local months = {}
  while sy * 12 + sm <= ey * 12 + em do
    months[#months + 1] = string.format("%04d-%02d", sy, sm)
    sy, sm = add_months(sy, sm, 1)
  end
  return months, string.format("%04d-%02d", add_months(y, m, params.deduction_start_offset_months))
end

-- Branch accepted: the payroll ledger rows (clause 12). One row per registered
-- person per remaining month of the contract (kind supplementary-premium); one
-- stop row per cancelled person (kind supplementary-cancel, period = the first
-- month without the deduction, amount = the monthly deduction that stops).
function M.deductions(v)
  local params = M.params(v.period)
  local today = M.jdate(now())
  local months, first = M.deduction_months(params, today)
  local rows, total = {}, 0
  local ref = "SI-" .. params.period .. "-" .. tostring(v.national_id)
  for _, f in ipairs(v.final_statuses or {}) do
    if f.action == "register" then
      for _, per in ipairs(months) do
        rows[#rows + 1] = { national_id = f.national_id, period = per,
                            amount_rials = params.premium_pensioner_rials,
                            kind = "supplementary-premium", reference = ref }
        total = total + params.premium_pensioner_rials
      end
    elseif f.action == "cancel" then
      rows[#rows + 1] = { national_id = f.national_id, period = first,
                          amount_rials = params.premium_pensioner_rials,
                          kind = "supplementary-cancel", reference = ref }
    end
  end
  return {
    accepted_date = today,
    deductions = rows,
    deduction_count = #rows,
    deduction_months = #months,
    first_deduction_period = first,
    deduction_total_rials = total,
  }
end

return M
