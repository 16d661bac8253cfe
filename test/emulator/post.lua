-- wrk script: POST message creates to the emulator.
-- wrk -t2 -c64 -d5s -s post.lua http://127.0.0.1:PORT
wrk.method = "POST"
wrk.path = "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:emulator-token
wrk.headers["Authorization"] = "Basic QUNhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYTplbXVsYXRvci10b2tlbg=="
wrk.body = "To=%2B15551234567&From=%2B15557654321&Body=Hello+from+the+benchmark%2C+this+is+a+typical+message+body."
