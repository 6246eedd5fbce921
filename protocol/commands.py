# The protocol's commands (PROTOCOL.md, "Commands"): the one list the board's
# command table, the host's client and the fuzzer are built from or checked against.
#
# Each name with whether it is safe to repeat: sent twice, it does what it does
# once, so a host may send it again after a resync when its reply was lost.
# The board imports this once to build its table and then lets it go (heap).
COMMANDS = (
    ("hello", True), ("model", True), ("list", True), ("upload_begin", True),
    ("upload_chunk", False), ("upload_end", False), ("select", True), ("delete", False),
    ("infer", True), ("batch", True), ("bench", True), ("stats", True), ("reset", True),
    ("pull", True), ("train_begin", True), ("train_step", False), ("train_eval", True),
    ("train_end", False), ("trace", True), ("monitor_config", True), ("monitor_start", True),
    ("monitor_feed", False), ("monitor_read", False), ("monitor_stop", False), ("events", True),
    ("data_begin", True), ("data_chunk", False), ("data_end", False), ("data_list", True),
    ("data_delete", False), ("data_train", False), ("data_eval", True), ("exit", False),
)
NAMES = tuple(name for name, _ in COMMANDS)
REPEATABLE = frozenset(name for name, again in COMMANDS if again)
