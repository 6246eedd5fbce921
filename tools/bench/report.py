"""The results as text: aligned tables or Markdown, and the lines below them, for the
virtual Pico's run and for a board's."""

from anne_host import unixport

from measure import BIG_HEAP


def _num(v, fmt="{:,.0f}"):
    return "MemoryError" if v is None else fmt.format(v)


def table(rows):
    head = ["model", "params", "baseline µs", "engine µs", "speed ratio", "reference µs",
            "heap held B baseline", "heap held B engine", "B/param baseline", "B/param engine",
            "load peak B baseline", "load peak B engine", "load peak B server",
            "max diff baseline/engine", "max diff engine/reference"]
    body = []
    for r in rows:
        p = r["params"]
        mark = "" if r["timing_heap"]["baseline"] == unixport.PICO_HEAP else " †"
        body.append([
            r["model"], "{:,}".format(p), "{:,.1f}".format(r["baseline_us"]) + mark,
            "{:,.1f}".format(r["engine_us"]), "%.1fx" % r["ratio"], "{:,.1f}".format(r["reference_us"]),
            _num(r["baseline_held"]), _num(r["engine_held"]),
            _num(r["baseline_held"] and r["baseline_held"] / p, "{:.1f}"), "%.2f" % (r["engine_held"] / p),
            _num(r["baseline_peak"]), _num(r["engine_peak"]),
            _num(r.get("server_peak")) if r.get("server_ok", True) else "refused",
            "%.1e" % r["diff_baseline_engine"], "%.1e" % r["diff_engine_reference"],
        ])
    return head, body


def int8_table(rows):
    """The int8 twins beside the float engine and the baseline, from the same runs."""
    head = ["int8 model", "params", "int8 µs", "vs baseline", "vs float engine", "heap held B",
            "B/param", "load peak B", "B allocated per inference", "max diff int8/float",
            "decisions unlike float"]
    body = []
    for r in rows:
        p = r["params"]
        body.append([
            r["model"], "{:,}".format(p), "{:,.2f}".format(r["int8_us"]), "%.1fx" % r["int8_ratio"],
            "%.1fx" % r["int8_vs_engine"], "{:,}".format(r["int8_held"]), "%.2f" % (r["int8_held"] / p),
            "{:,}".format(r["int8_peak"]), "{:,.0f}".format(r["int8_alloc_per_inference"]),
            "%.3f" % r["diff_int8_engine"], "%d of %d" % (r["int8_decisions_differ"], r["rows"]),
        ])
    return head, body


def markdown(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def text(head, body, first_left=True):
    # The model column left-aligned, the figures right-aligned (a board's table: all right).
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 and first_left else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in [head] + body)


def report(result, md=False):
    show = markdown if md else text
    out = [show(*table(result["models"])), "", show(*int8_table(result["models"])), ""]
    big = [r for r in result["models"] if r["timing_heap"]["baseline"] != unixport.PICO_HEAP]
    if big:
        out.append("† the baseline does not fit the %s-byte heap (MemoryError); it was timed alone in a "
                   "%s-byte heap, which only helps it (fewer collections), the engine in the Pico heap. "
                   "The baseline holds: %s." % ("{:,}".format(unixport.PICO_HEAP), "{:,}".format(BIG_HEAP), ", ".join(
                       "%s %s B" % (r["model"], "{:,}".format(r["baseline_held_big_heap"])) for r in big)))
    for r in result["models"]:
        f = r["heap_flat"]
        out.append("- %s: %s MACs; engine %.2f ns/MAC, baseline %.0f ns/MAC; engine load peak = weights "
                   "+ %s B (anne.load), %s through the server; heap in use before/after %s inferences "
                   "%s / %s B; allocated per inference: engine %s B, baseline %s B; decisions that differ: "
                   "%d of %d" % (
                       r["model"], "{:,}".format(r["macs"]), r["engine_ns_per_mac"], r["baseline_ns_per_mac"],
                       "{:,}".format(r["engine_peak"] - r["weight_bytes"]),
                       "+ {:,} B".format(r["server_peak"] - r["weight_bytes"]) if r.get("server_peak")
                       else "refused",
                       "{:,}".format(f["inferences"]), "{:,}".format(f["before"]), "{:,}".format(f["after"]),
                       "{:,.0f}".format(r["engine_alloc_per_inference"]),
                       "-" if r["baseline_alloc_per_inference"] is None
                       else "{:,.0f}".format(r["baseline_alloc_per_inference"]),
                       r["decisions_differ"], r["rows"]))
        f = r["int8_heap_flat"]
        out.append("  int8: %.2f ns/MAC; load peak = int8 arrays + %s B; heap in use before/after %s "
                   "inferences %s / %s B" % (
                       r["int8_ns_per_mac"], "{:,}".format(r["int8_peak"] - r["int8_held"]),
                       "{:,}".format(f["inferences"]), "{:,}".format(f["before"]), "{:,}".format(f["after"])))
    out.append("")
    for march, figures in result["thumb"].items():
        if "error" in figures:
            out.append("Thumb %s: not counted (%s)" % (march, figures["error"]))
            continue
        for c in figures:
            out.append("Thumb %s, %s (%s) inner loop: %.2f instructions per MAC (%d instructions for %d "
                       "MACs; %d stack loads, %d stack stores, %d multiplies)" % (
                           march, c["kernel"], c["function"], c["instructions_per_mac"], c["instructions"],
                           c["macs_per_iteration"], c["stack_loads"], c["stack_stores"], c["muls"]))
    imp = result["imports"]
    for what in ("engine", "server"):
        py, mpy = imp[what + "_py"], imp[what + "_mpy"]
        out.append("import %s: .py %s µs, heap after %s B; .mpy %s µs, heap after %s B" % (
            what, "{:,}".format(py["us"]), "{:,}".format(py["heap"]),
            "{:,}".format(mpy["us"]), "{:,}".format(mpy["heap"])))
    lg = result["largest"]
    out.append("largest 64-h-h/2-10 net in the Pico heap: %s (%s parameters) with anne.load at the "
               "REPL (firmware .mpy, no server)" % (lg["repl"]["name"], "{:,}".format(lg["repl"]["params"])))
    t8 = lg["int8_target"]
    out.append("  as int8: %s (%s parameters); %s (%s parameters) %s" % (
        lg["int8"]["name"], "{:,}".format(lg["int8"]["params"]), t8["name"], "{:,}".format(t8["params"]),
        "loads and runs, holding %s B (%.3f B/param)" % ("{:,}".format(t8["held"]), t8["held"] / t8["params"])
        if t8["ok"] else "does not load"))
    if "server" in lg:
        out.append("  through the virtual Pico's server (upload and activate): %s (%s parameters) with "
                   "the firmware as .mpy (as the virtual Pico installs it, like deploy); %s (%s) as .py "
                   "sources; free heap on the server without a model: %s B (.mpy), %s B (.py)" % (
                       lg["server"]["name"], "{:,}".format(lg["server"]["params"]),
                       lg["server_py"]["name"], "{:,}".format(lg["server_py"]["params"]),
                       "{:,}".format(lg["server_free"]), "{:,}".format(lg["server_free_py"])))
    for t in lg.get("through_server", []):
        out.append("  %s (%s parameters, %s) through the server (upload, select, infer): %s" % (
            t["name"], "{:,}".format(t["params"]), t["dtype"],
            "runs, %s B heap free after" % "{:,}".format(t["mem_free"]) if t["ok"] else t["error"]))
    for d in lg.get("diagnosis", []):
        out.append("  server's upload path replayed: %s (%s params, largest weight array %s B): %s B free "
                   "before upload_end, largest free block %s B; %s" % (
                       d["model"], "{:,}".format(d["params"]), "{:,}".format(d["largest_array"]),
                       "{:,}".format(d["mem_free"]), _num(d["max_free_block"]),
                       "loads (holds %s B)" % "{:,}".format(d["held"]) if d["ok"] else
                       "refused: " + d["refused"]))
    e2e = result.get("end_to_end")
    if e2e:
        ev = e2e["eval"]
        out.append("eval iris6 end to end (%s samples, median of %d): %s samples/s, board-only %s samples/s "
                   "(%.0f %%; %.0f-%.0f %% over the runs); per inference %.1f B written, %.1f B read; "
                   "one infer per round trip: %s/s" % (
                       "{:,}".format(ev["samples"]), ev["runs"], "{:,.0f}".format(ev["samples_per_s"]),
                       "{:,.0f}".format(ev["board_samples_per_s"]), 100 * ev["fraction_of_board_rate"],
                       100 * min(ev["fractions"]), 100 * max(ev["fractions"]),
                       ev["bytes_written_per_inference"], ev["bytes_read_per_inference"],
                       "{:,.0f}".format(ev["infer_round_trips_per_s"])))
        lo = ev["long"]
        out.append("  a %s-sample stream: %s samples/s (%.0f %% of board-only); the board process spent "
                   "%s µs CPU per sample, %.1f µs of it in inference (%s), and waited %s µs per sample "
                   "for a CPU; the host process (client and the virtual Pico's bridge thread) spent "
                   "%.1f µs CPU per sample; wall time %.1f µs per sample" % (
                       "{:,}".format(lo["samples"]), "{:,.0f}".format(lo["samples_per_s"]),
                       100 * lo["samples_per_s"] / lo["board_samples_per_s"],
                       _num(lo["board_cpu_us_per_sample"], "{:.1f}"), lo["board_us_per_sample"],
                       _num(lo.get("inference_share_of_board_cpu"), "{:.0%}"),
                       _num(lo["board_cpu_wait_us_per_sample"], "{:.1f}"), lo["host_cpu_us_per_sample"],
                       1e6 / lo["samples_per_s"]))
        up = e2e["upload"]
        out.append("upload %s (%s B in %d chunks of %d B): %s B/s transfer, %s B/s with verify and load; "
                   "then runs on the server (%d µs), %s B heap free" % (
                       lg["server"]["name"], "{:,}".format(up["bytes"]), up["chunks"], up["chunk"],
                       "{:,.0f}".format(up["transfer_bytes_per_s"]),
                       "{:,.0f}".format(up["with_verify_and_load_bytes_per_s"]), up["infer_us"],
                       "{:,}".format(up["mem_free"])))
    return "\n".join(out)


def print_report(result, md=False):
    env = result["environment"]
    print("%s; %s, %s CPUs; Python %s; MicroPython %s; heap %s B; %s" % (
        env["date"], env["machine"], env["nproc"], env["python"], env["micropython"],
        "{:,}".format(env["heap"]), env["command"]))
    print()
    print(report(result, md=md))
    print("(%.0f s, %d MicroPython processes)" % (result["seconds"], result["processes"]))


def _f(v, fmt):
    return "-" if v is None else fmt.format(v)


def board_report(result, md=False):
    head = ["model", "MACs", "paper-style µs", "float µs", "float µs/MAC", "int8 µs", "int8 µs/MAC",
            "float x paper", "int8 x paper", "float infer µs", "int8 infer µs"]
    rows = []
    for r in result["models"]:
        f, q, b = r["float"], r["int8"], r["baseline"]
        rows.append([r["model"], "{:,}".format(r["macs"]),
                     _f(b["us"], "{:,.0f}") if b["us"] else b.get("error", "-"),
                     "{:,.0f}".format(f["us"]), "{:.3f}".format(f["us"] / r["macs"]),
                     "{:,.0f}".format(q["us"]), "{:.3f}".format(q["us"] / r["macs"]),
                     _f(b["us"] and b["us"] / f["us"], "{:.1f}x"), _f(b["us"] and b["us"] / q["us"], "{:.1f}x"),
                     "{:,}".format(f["infer_us"]), "{:,}".format(q["infer_us"])])
    out = [markdown(head, rows) if md else text(head, rows, first_left=False)]
    out.append("")
    out.append("free heap with the server started: {:,} B".format(result["free_at_start"]))
    for dtype, e in result["eval"].items():
        out.append("eval of iris6 (%s, %d rows): %.0f samples/s in board time, board-only %.0f/s: %.0f %%"
                   % (dtype, e["rows"], e["eval_per_s"], e["board_only_per_s"], 100 * e["ratio"]))
    out.append("upload: {:,.0f} B/s in board time".format(result["upload_bytes_per_s"]))
    for dtype, l in result.get("largest", {}).items():
        out.append("largest %s model through the server: %s (%s parameters)"
                   % (dtype, l["name"], "{:,}".format(l["params"])))
    return "\n".join(out)


def print_board_report(result, md=False):
    print("%s, %s: every time is the board's own (time.ticks_us); %.0f s wall"
          % (result["board"], result["micropython"], result["seconds"]))
    print()
    print(board_report(result, md=md))
