-- wrk script: start api-bench instances (operator token in RAVAND_TOKEN).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RAVAND_TOKEN")
wrk.body = '{"process":"api-bench","business_key":"0013542419","variables":{"branch":"B1","amount":1200000}}'
