#!/usr/bin/env python3
"""Writes a viztracer-like Chrome trace for replay benchmarks (not committed: it is large).

usage: gen_chrome_trace.py OUT EVENTS [THREADS]

Each task is a `_WorkItem.run` pool frame (stdlib path) calling a user function (an app
path) that calls 8 steps (half user code, half C functions without a path), written as
viztracer writes them: `X` events with `cat:"FEE"`, each as it closes (inner first), per
thread in time order, threads interleaved. 10 events per task; about 113 bytes per event.

Measured (2026-12-06, 2 shared cores, file in page cache, medians of 3) on 6 000 000 events
(678 MB): `cat` 0.13 s; `poolscope log --replay F --format jsonl` 8.5 s wall, 7.8 s CPU,
263 MB peak RSS; `poolscope snapshot --replay F` 9.6 s wall, 7.9 s CPU, 263 MB peak RSS.
After 32-byte spans and interned pending tasks: `log` 7.7 s wall, 7.1 s CPU, 206 MB;
`snapshot` 8.1 s wall, 7.3 s CPU, 206 MB.
Streaming replay (bounded memory, events parsed in place), `poolscope bench --replay F`, medians
of 3 alternating with the previous build: jsonl 5.17 s CPU, 5.80 s wall (1.16 M events per CPU
second), 37 MB peak RSS (previous: 7.06 s, 7.70 s, 205 MB); `--model` 5.51 s, 5.77 s, 44 MB
(previous: 8.01 s, 8.61 s, 205 MB). 1 M tasks of distinct names (2 M events): 62 MB (was 393 MB).
Measure with `poolscope bench --replay F [--model]` (one JSON line: events, wall and CPU seconds,
events/s, peak RSS, and the time to merely read the file), or
`/usr/bin/time -f "%e s %U+%S s %M KB" poolscope log --replay F --format jsonl`.
"""
import sys

out_path, events = sys.argv[1], int(sys.argv[2])
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
tasks = events // 10
POOL = "_WorkItem.run (/usr/lib/python3.11/concurrent/futures/thread.py:53)"
with open(out_path, "w") as f:
    f.write('{"traceEvents":[\n')
    f.write('{"ph":"M","name":"process_name","pid":4242,"tid":4242,"args":{"name":"python3"}}')
    for t in range(threads):
        f.write(',\n{"ph":"M","name":"thread_name","pid":4242,"tid":%d,"args":{"name":"ThreadPoolExecutor-0_%d"}}' % (5000 + t, t))
    buf = []
    for i in range(tasks):
        tid = 5000 + i % threads
        t0 = (i // threads) * 1000.0 + (i % threads) * 0.125
        for s in range(8):
            name = ("step_%d (/home/user/app.py:%d)" % (s, 20 + s)) if s % 2 == 0 else "time.sleep"
            buf.append(',\n{"pid":4242,"tid":%d,"ts":%.3f,"dur":%.3f,"name":"%s","ph":"X","cat":"FEE"}'
                       % (tid, t0 + 12.5 + s * 110, 100.0, name))
        buf.append(',\n{"pid":4242,"tid":%d,"ts":%.3f,"dur":%.3f,"name":"work_%d (/home/user/app.py:10)","ph":"X","cat":"FEE"}'
                   % (tid, t0 + 10, 900.0, i % 13))
        buf.append(',\n{"pid":4242,"tid":%d,"ts":%.3f,"dur":%.3f,"name":"%s","ph":"X","cat":"FEE"}'
                   % (tid, t0 + 5, 910.0, POOL))
        if len(buf) > 50000:
            f.write("".join(buf))
            buf.clear()
    f.write("".join(buf))
    f.write("\n]}\n")
