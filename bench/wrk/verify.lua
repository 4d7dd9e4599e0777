-- Checks every answer wrk gets: a 200 whose body is exactly the addresses expected (`127.0.0.1:PORT`,
-- one a line, as a text answer lists them), all distinct, and counts them; `done` prints one line the
-- benchmark reads. The script's argument (after `--`) is how many addresses an answer lists: 1 for a
-- pair (the default), N - 1 for a group of N (the other members).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answered = 0
  bad = 0
  first_bad = ""
  expected = tonumber(args[1]) or 1
end

-- True when the body is exactly `expected` distinct addresses, each on a line of its own.
local function well_formed(body)
  local seen, count, repeated = {}, 0, false
  local rest = string.gsub(body, "(127%.0%.0%.1:%d+)\n", function(address)
    repeated = repeated or seen[address] ~= nil
    seen[address] = true
    count = count + 1
    return ""
  end)
  return rest == "" and count == expected and not repeated
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 or not well_formed(body) then
    if bad == 0 then first_bad = status .. " " .. string.sub(body, 1, 80) end
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_answered, total_bad, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    total_answered = total_answered + thread:get("answered")
    total_bad = total_bad + thread:get("bad")
    if first == "" then first = thread:get("first_bad") end
  end
  io.write(string.format("verify: %d answered, %d bad, p50 %.3f ms, p99 %.3f ms, first bad: %s\n",
    total_answered, total_bad, latency:percentile(50) / 1000, latency:percentile(99) / 1000, first))
end
