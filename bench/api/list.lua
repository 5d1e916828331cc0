-- wrk script: the branch cartable, first page (clerk token in RAVAND_TOKEN).
wrk.method = "GET"
wrk.path = "/v1/tasks?process=api-bench&limit=50"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RAVAND_TOKEN")
