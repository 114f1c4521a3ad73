-- wrk script: authenticate one existing device account over and over.
-- Usage: wrk -t2 -c64 -d10s -s bench/auth_device.lua http://127.0.0.1:7350
wrk.method = "POST"
wrk.path = "/v2/account/authenticate/device?create=true"
wrk.body = '{"id":"wrk-bench-device-0001","vars":{"region":"eu"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic ZGVmYXVsdGtleTo=" -- base64("defaultkey:")
