local M = {}
function M.fee(v) return (v.wage or 0) * 7 // 100 end
return M
