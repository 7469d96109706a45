"""The plausible wrong answers to every exercise, graded: each gets the message that names its
mistake, and no message gives away the expected value of a reasoning question.

Like a teacher's answer key that lists, beside each question, the mistakes students usually
make: each round below submits a lesson's solutions with some answers replaced by a wrong one
(at most one per exercise, so the check that catches it runs), grades the notebook with the real
grader, and checks that exactly those exercises fail, each with the message expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from course import grader, paths, release
from course.notebook_files import ipynb_text, read_markdown

Edit = str | tuple[tuple[str, str], ...]  # a whole new answer cell, or (old, new) replacements


@dataclass(frozen=True)
class Wrong:
    """One submission: answers replaced (by answer grade_id), and the text each failing test
    cell's message must contain (by test grade_id); `hides` must appear in no message."""

    answers: dict[str, Edit]
    says: dict[str, str]
    hides: tuple[str, ...] = field(default=())


CB = "circuit-breaker"
FD = "failure-detection"
DSM = "distributed-system-model"
WRONG: dict[str, list[Wrong]] = {
    "specialized/two-phase-commit": [
        Wrong({f"{(TPC := 'two-phase-commit')}-ex1-answer":
                   "class CooperativeTermination(TwoPhaseCommitNode):\n    pass\n",
               f"{TPC}-ex2-answer": 'chosen_protocol = "2pc"\nchosen_takeover_s = 0.2',
               f"{TPC}-ex3-answer": (("cap_no_crash = 1 / hold_s",
                                      "cap_no_crash = 1 / (2 * 0.004)"),)},
              {f"{TPC}-ex1-tests": "stayed prepared on a node although another node",
               f"{TPC}-ex2-tests": "holds the row for the whole 30 s repair",
               f"{TPC}-ex3-tests": "that counts only the two round trips"},
              hides=("64.5", "20.62")),
        Wrong({f"{TPC}-ex1-answer":
                   "class CooperativeTermination(TwoPhaseCommitNode):\n"
                   "    def on_timer(self, ctx, name):\n"
                   "        kind, txn = name\n"
                   "        if kind == 'ask' and self.participant.log.get(txn) == PREPARED:\n"
                   "            self.participant.log[txn] = ABORT\n"
                   "        else:\n"
                   "            super().on_timer(ctx, name)\n",
               f"{TPC}-ex2-answer": 'chosen_protocol = "paxos-commit"\nchosen_takeover_s = 2.0',
               f"{TPC}-ex3-answer": (("(0.004 + 0.0015))", "hold_s)"),)},
              {f"{TPC}-ex1-tests": "After a yes vote a participant may only adopt an outcome",
               f"{TPC}-ex2-tests": "shorten the takeover",
               f"{TPC}-ex3-tests": "uses the whole lock hold as the in-doubt window"},
              hides=("64.5", "20.62")),
        Wrong({f"{TPC}-ex1-answer":
                   "class CooperativeTermination(TwoPhaseCommitNode):\n"
                   "    def on_request(self, ctx, request):\n"
                   "        if request.f == 'read':\n"
                   "            super().on_request(ctx, request)\n"
                   "        else:\n"
                   "            ctx.fail(request)\n",
               f"{TPC}-ex2-answer": 'chosen_protocol = "paxos-commit"\nchosen_takeover_s = 0.05',
               f"{TPC}-ex3-answer": (("(6 / 60)", "6"),)},
              {f"{TPC}-ex1-tests": "no transaction committed",
               f"{TPC}-ex2-tests": "is shorter than 0.15 s",
               f"{TPC}-ex3-tests": "that takes 6 crashes per second"},
              hides=("64.5", "20.62")),
    ],
    "specialized/partitioned-log-consumers": [
        Wrong({f"{(PLC := 'partitioned-log-consumers')}-ex1-answer": (
                   ("            if record_id not in seen:\n                seen.add(record_id)\n"
                    "                ctx.disk[\"total\"] += amount",
                    "            ctx.disk[\"total\"] += amount"),),
               f"{PLC}-ex2-answer": 'chosen = {"partitions": 8, "consumers": 4}',
               f"{PLC}-ex3-answer": (("ceiling_rps = 200 / 0.3", "ceiling_rps = 12 * 200"),)},
              {f"{PLC}-ex1-tests": "an add was counted twice",
               f"{PLC}-ex2-tests": "it owns the hot partition and more",
               f"{PLC}-ex3-tests": "the ceiling with no skew"},
              hides=("666.6", "400.9")),
        Wrong({f"{PLC}-ex1-answer": (
                   ("        seen = ctx.disk.setdefault(\"counted\", set())\n"
                    "        for record_id, amount in records:\n"
                    "            if record_id not in seen:\n                seen.add(record_id)\n"
                    "                ctx.disk[\"total\"] += amount",
                    "        start = ctx.disk[\"next\"][partition]\n"
                    "        ctx.disk[\"total\"] += sum(amount for k, (_, amount) in "
                    "enumerate(records) if offset + k >= start)"),),
               f"{PLC}-ex2-answer": 'chosen = {"partitions": 5, "consumers": 5}',
               f"{PLC}-ex3-answer": (("replays = 600 * 3 * (0.7 / 11) * 3.5",
                                      "replays = 600 * 3.5"),)},
              {f"{PLC}-ex1-tests": "duplicates, crashes and losses, seed 1",
               f"{PLC}-ex2-tests": "run too close to their capacity",
               f"{PLC}-ex3-tests": "only the crashed consumer's records are replayed"},
              hides=("666.6", "400.9")),
        Wrong({f"{PLC}-ex2-answer": 'chosen = {"partitions": 8, "consumers": 12}',
               f"{PLC}-ex3-answer": (("ceiling_rps = 200 / 0.3", "ceiling_rps = 200 * 0.3"),)},
              {f"{PLC}-ex2-tests": "the budget is at most 8",
               f"{PLC}-ex3-tests": "an inverted ratio"},
              hides=("666.6", "400.9")),
    ],
    "distributed-data/sharding": [
        Wrong({f"{(SH := 'sharding')}-ex1-answer": (
                   ("part = self._pick(key, self.copies.get(key, 1))", "part = 0"),),
               f"{SH}-ex2-answer": 'chosen = {"shards": 20, "split_keys": 0, "split_factor": 1}',
               f"{SH}-ex3-answer": (("ceiling_rps = 2000 / (p_hot + rest)",
                                     "ceiling_rps = 2000 * 10.0"),)},
              {f"{SH}-ex1-tests": "all reads went to too few copies",
               f"{SH}-ex2-tests": "the hottest keys' shards cap the cluster",
               f"{SH}-ex3-tests": "that is n·μ, the ceiling with no skew"},
              hides=("9081", "14844")),
        Wrong({f"{SH}-ex1-answer": (("for part in range(self.copies.get(key, 1)):\n"
                                     "            super().put(sub_key(key, part), value)",
                                     "super().put(key, value)"),),
               f"{SH}-ex2-answer": 'chosen = {"shards": 20, "split_keys": 16, "split_factor": 8}',
               f"{SH}-ex3-answer": (("split_ceiling_rps = 2000 / (p_hot * (0.8 / 5 + 0.2) + rest)",
                                     "split_ceiling_rps = 2000 / (p_hot / 5 + rest)"),)},
              {f"{SH}-ex1-tests": "a put must write every copy",
               f"{SH}-ex2-tests": "every read of a split key visits all its sub-keys",
               f"{SH}-ex3-tests": "that treats every request as a write"},
              hides=("9081", "14844")),
        Wrong({f"{SH}-ex1-answer": (("            for part in range(have, copies):\n"
                                     "                super().put(sub_key(key, part), value)\n",
                                     "            pass\n"),),
               f"{SH}-ex2-answer": 'chosen = {"shards": 24, "split_keys": 4, "split_factor": 4}',
               f"{SH}-ex3-answer": (("ceiling_rps = 2000 / (p_hot + rest)",
                                     "ceiling_rps = 2000 / p_hot"),)},
              {f"{SH}-ex1-tests": "replicate must write the current value into the new copies",
               f"{SH}-ex2-tests": "at most 20 shards are allowed",
               f"{SH}-ex3-tests": "that counts only the hottest key on its shard"},
              hides=("9081", "14844")),
    ],
    "distributed-data/gossip-anti-entropy": [
        Wrong({f"{(GAE := 'gossip-anti-entropy')}-ex1-answer": (
                   ("                    if len(deltas) == self.max_batch:\n"
                    "                        break\n", ""),),
               f"{GAE}-ex2-answer": "chosen_mode = 'push-pull'\nchosen_fanout = 2\n"
                                    "chosen_period_s = 1.0",
               f"{GAE}-ex3-answer": "import math\npush_rounds = math.log2(65_536)\n"
                                    "hashes_compared = 1 + 2 * 12\n"
                                    "keys_exchanged = 1 + (500_000 - 1) / 4096"},
              {f"{GAE}-ex1-tests": "send the first 8 and let the next digest ask",
               f"{GAE}-ex2-tests": "frequent small rounds beat rare large ones",
               f"{GAE}-ex3-tests": "that is log₂N alone"},
              hides=("27.09", "123.07")),
        Wrong({f"{GAE}-ex1-answer": (
                   ('summary = tuple(sorted((origin, len(values)) for origin, values in '
                    'ctx.disk["log"].items()))',
                    'summary = (tuple(sorted((origin, len(values)) for origin, values in '
                    'ctx.disk["log"].items())), frozenset(v for values in '
                    'ctx.disk["log"].values() for v in values))'),
                   ("have = dict(message[1])", "have = dict(message[1][0])")),
               f"{GAE}-ex2-answer": "chosen_mode = 'push'\nchosen_fanout = 1\n"
                                    "chosen_period_s = 0.5",
               f"{GAE}-ex3-answer": "import math\n"
                                    "push_rounds = math.log2(65_536) + math.log(65_536)\n"
                                    "hashes_compared = 12\n"
                                    "keys_exchanged = 1 + (500_000 - 1) / 4096"},
              {f"{GAE}-ex1-tests": "a digest that lists elements grows with the set",
               f"{GAE}-ex2-tests": "calling nodes that already know (the end game)",
               f"{GAE}-ex3-tests": "one hash per level below the root"},
              hides=("27.09", "123.07")),
        Wrong({f"{GAE}-ex1-answer": (
                   ('        ctx.send(peer, ("digest", summary))\n'
                    '        ctx.set_timer(self.period_s, "pull")',
                    '        ctx.send(peer, ("digest", summary))'),),
               f"{GAE}-ex2-answer": "chosen_mode = 'push-pull'\nchosen_fanout = 2\n"
                                    "chosen_period_s = 0.5",
               f"{GAE}-ex3-answer": "import math\n"
                                    "push_rounds = math.log2(65_536) + math.log(65_536)\n"
                                    "hashes_compared = 1 + 2 * 12\n"
                                    "keys_exchanged = 500_000 / 4096"},
              {f"{GAE}-ex1-tests": "Something acknowledged never reached every node",
               f"{GAE}-ex2-tests": "over the 4000 budget",
               f"{GAE}-ex3-tests": "that is an average bucket"},
              hides=("27.09", "123.07")),
        Wrong({f"{GAE}-ex1-answer": (
                   ("            ctx.reply(request)\n        else:",
                    "            ctx.reply(request)\n"
                    '            ctx.send(ctx.peers[0], ("deltas", ((ctx.node_id, '
                    "len(log[ctx.node_id]) - 1, request.value),)))\n        else:"),),
               f"{GAE}-ex2-answer": "chosen_mode = 'push-pull'\nchosen_fanout = 1.5\n"
                                    "chosen_period_s = 0.5",
               f"{GAE}-ex3-answer": "import math\npush_rounds = 'about 27'\n"
                                    "hashes_compared = 1 + 2 * 12\n"
                                    "keys_exchanged = 1 + (500_000 - 1) / 4096"},
              {f"{GAE}-ex1-tests": "deltas it did not ask for",
               f"{GAE}-ex2-tests": "chosen_fanout a whole number",
               f"{GAE}-ex3-tests": "push_rounds must be a positive number"},
              hides=("27.09", "123.07")),
    ],
    "distributed-data/bloom-filter": [
        Wrong({f"{(BF := 'bloom-filter')}-ex1-answer": (
                   ("                self.counts[p] += 1", "                self.counts[p] = 1"),),
               f"{BF}-ex2-answer": "chosen_bits_per_key = 8.0\nchosen_hashes = None",
               f"{BF}-ex3-answer": "import math\nbits_per_key = math.log2(1000)\n"
                                   "hashes = round(bits_per_key * math.log(2))\n"
                                   "filter_mib = 200e6 * bits_per_key / 8 / 2**20"},
              {f"{BF}-ex1-tests": "reached zero too early",
               f"{BF}-ex2-tests": "the filters let too many absent keys through",
               f"{BF}-ex3-tests": "that is log2(1/f)"},
              hides=("14.38", "342.7", "342.8")),
        Wrong({f"{BF}-ex1-answer": (
                   ("        if any(self.counts[p] == 0 for p in positions):\n"
                    "            raise ValueError(f\"{key!r} was never added: one of its counters "
                    "is zero\")\n", ""),),
               f"{BF}-ex2-answer": "chosen_bits_per_key = 16.0\nchosen_hashes = None",
               f"{BF}-ex3-answer": "import math\nbits_per_key = -math.log(0.001) / math.log(2) ** 2"
                                   "\nhashes = round(bits_per_key)\n"
                                   "filter_mib = 200e6 * bits_per_key / 8 / 2**20"},
              {f"{BF}-ex1-tests": "removing a key that was never added should raise ValueError",
               f"{BF}-ex2-tests": "over the 24 KiB budget",
               f"{BF}-ex3-tests": "that is k = m/n"},
              hides=("14.38", "342.7", "342.8")),
        Wrong({f"{BF}-ex1-answer": (
                   ("            if self.counts[p] < self.MAX:\n"
                    "                self.counts[p] += 1", "            self.counts[p] += 1"),),
               f"{BF}-ex2-answer": "chosen_bits_per_key = 12.0\nchosen_hashes = 1",
               f"{BF}-ex3-answer": "import math\nbits_per_key = -math.log(0.001) / math.log(2) ** 2"
                                   "\nhashes = round(bits_per_key * math.log(2))\n"
                                   "filter_mib = 200e6 * bits_per_key / 8 / 1e6"},
              {f"{BF}-ex1-tests": "add must stop at MAX",
               f"{BF}-ex2-tests": "far from the best k",
               f"{BF}-ex3-tests": "that is in MB"},
              hides=("14.38", "342.7", "342.8")),
    ],
    "distributed-data/replication-sync-async": [
        Wrong({f"{(RSA := 'replication-sync-async')}-ex1-answer": (
                   ("        return in_reach >= self.k", "        return True"),),
               f"{RSA}-ex2-answer": "chosen_replicas = ('same-zone', 'zone-b', 'region-2')\n"
                                    "chosen_acks = 1",
               f"{RSA}-ex3-answer": (("sync_all_ms = mean_ms * (1 + 1 / 2 + 1 / 3)",
                                      "sync_all_ms = 3 * mean_ms"),)},
              {f"{RSA}-ex1-tests": "Refuse requests in admit",
               f"{RSA}-ex2-tests": "the replica in the primary's own zone",
               f"{RSA}-ex3-tests": "the replicas work in parallel"},
              hides=("9.1667", "4.1667", "9.17", "4.17")),
        Wrong({f"{RSA}-ex1-answer": (
                   ("        ranked = sorted(self.acked.values(), reverse=True)\n"
                    "        return ranked[self.k - 1] if len(ranked) >= self.k else 0\n",
                    "        return len(ctx.disk['log'])\n"),),
               f"{RSA}-ex2-answer": "chosen_replicas = ('zone-b', 'zone-c', 'region-2')\n"
                                    "chosen_acks = 2",
               f"{RSA}-ex3-answer": (("two_of_three_ms = mean_ms * (1 / 3 + 1 / 2)",
                                      "two_of_three_ms = mean_ms * (1 + 1 / 2)"),)},
              {f"{RSA}-ex1-tests": "a read missed an acknowledged write",
               f"{RSA}-ex2-tests": "wait for fewer",
               f"{RSA}-ex3-tests": "the gaps' rates run the other way"},
              hides=("9.1667", "4.1667", "9.17", "4.17")),
        Wrong({f"{RSA}-ex1-answer": (
                   ("        ranked = sorted(self.acked.values(), reverse=True)\n"
                    "        return ranked[self.k - 1] if len(ranked) >= self.k else 0\n",
                    "        return min(self.acked.values())\n"),),
               f"{RSA}-ex2-answer": "chosen_replicas = ('zone-b', 'zone-c', 'region-2')\n"
                                    "chosen_acks = 0",
               f"{RSA}-ex3-answer": (("async_at_risk = 350 * mean_ms / 1000",
                                      "async_at_risk = 350 * mean_ms"),)},
              {f"{RSA}-ex1-tests": "waits for more backups than k",
               f"{RSA}-ex2-tests": "nothing waits for a confirmation",
               f"{RSA}-ex3-tests": "units: the lag is 0.005 s"},
              hides=("9.1667", "4.1667", "9.17", "4.17")),
    ],
    "distributed-data/event-sourcing-snapshots": [
        Wrong({f"{(ES := 'event-sourcing-snapshots')}-ex1-answer": (
                   ("        for snapshot in self.snapshots_of(stream)[: self.max_load_attempts]:\n"
                    "            if self.usable(snapshot):\n"
                    "                return self.replay_from(stream, snapshot)\n", ""),),
               f"{ES}-ex2-answer": "chosen_interval = 45",
               f"{ES}-ex3-answer": (("s_star = math.sqrt(2 * lam * c_s / (f * c_r))",
                                     "s_star = math.sqrt(lam * c_s / (f * c_r))"),)},
              {f"{ES}-ex1-tests": "what the lesson's load does",
               f"{ES}-ex2-tests": "S is too large for the target",
               f"{ES}-ex3-tests": "the factor 2 is missing"},
              hides=("1549.1", "14.142", "0.0010328")),
        Wrong({f"{ES}-ex1-answer": (("self.snapshots_of(stream)[: self.max_load_attempts]",
                                     "self.snapshots_of(stream)[::-1][: self.max_load_attempts]"),),
               f"{ES}-ex2-answer": "chosen_interval = 10",
               f"{ES}-ex3-answer": (("cost_at_s_star = lam * c_s / s_star + f * c_r * s_star / 2",
                                     "cost_at_s_star = lam * c_s / s_star"),)},
              {f"{ES}-ex1-tests": "the oldest snapshot was used",
               f"{ES}-ex2-tests": "S is too small",
               f"{ES}-ex3-tests": "one of the two terms only"},
              hides=("1549.1", "14.142", "0.0010328")),
        Wrong({f"{ES}-ex1-answer": (("self.snapshots_of(stream)[: self.max_load_attempts]",
                                     "self.snapshots_of(stream)"),),
               f"{ES}-ex2-answer": "chosen_interval = 100",
               f"{ES}-ex3-answer": (("s_star_stateless = math.sqrt(2 * c_s / c_r)",
                                     "s_star_stateless = math.sqrt(c_s / c_r)"),)},
              {f"{ES}-ex1-tests": "more than max_load_attempts snapshots were tried",
               f"{ES}-ex2-tests": "S is too large for the target",
               f"{ES}-ex3-tests": "the factor 2 is missing: √(2c_s/c_r)"},
              hides=("1549.1", "14.142", "0.0010328")),
        Wrong({f"{ES}-ex1-answer": (("if self.usable(snapshot):", "if snapshot.intact:"),),
               f"{ES}-ex3-answer": (("0.0002, 1 / 300", "0.0002, 1 / 5"),)},
              {f"{ES}-ex1-tests": "a snapshot in an old schema was used",
               f"{ES}-ex3-tests": "f must be per second"},
              hides=("1549.1", "14.142", "0.0010328")),
    ],
    "distributed-data/quorum-consistency": [
        Wrong({f"{(QC := 'quorum-consistency')}-ex1-answer": (
                   ('if op.request.f == "read" and not op.quorum.stale:',
                    'if op.request.f == "read":'),),
               f"{QC}-ex2-answer": "R_CHOSEN = 2\nW_CHOSEN = 2",
               f"{QC}-ex3-answer": "expected_read_ms = 10 * (1 + 1 / 2 + 1 / 3)\n"
                                   "smallest_w = 9 - 3"},
              {f"{QC}-ex1-tests": "skipped the write-back while that value might be held",
               f"{QC}-ex2-tests": "of reads were stale, over 0.2 %",
               f"{QC}-ex3-tests": "that waits for all of 3 replicas"},
              hides=("7.8333", "7.833")),
        Wrong({f"{QC}-ex1-answer": (
                   ('        if op.request.f == "read" and not op.quorum.stale:\n'
                    '            self.finish(ctx, op, op.quorum.newest.value)\n'
                    '            return\n', ""),),
               f"{QC}-ex2-answer": "R_CHOSEN = 3\nW_CHOSEN = 3",
               f"{QC}-ex3-answer": "expected_read_ms = 10 * (1 / 5 + 1 / 4 + 1 / 3)\n"
                                   "smallest_w = 9 - 3"},
              {f"{QC}-ex1-tests": "every read still writes back",
               f"{QC}-ex2-tests": "p99 read latency",
               f"{QC}-ex3-tests": "strict vs non-strict inequality"},
              hides=("7.8333", "7.833")),
        Wrong({f"{QC}-ex1-answer": (
                   ('if op.request.f == "read" and not op.quorum.stale:',
                    'mine = op.quorum.answers.get(ctx.node_id)\n'
                    '        if op.request.f == "read" and mine is not None and '
                    'mine.stamp == op.quorum.newest.stamp:'),),
               f"{QC}-ex2-answer": "R_CHOSEN = 1\nW_CHOSEN = 5",
               f"{QC}-ex3-answer": "expected_read_ms = 10 * (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5)"
                                   "\nsmallest_w = 7"},
              {f"{QC}-ex1-tests": "not linearizable",
               f"{QC}-ex2-tests": "p99 write latency",
               f"{QC}-ex3-tests": "that is the slowest of the 5"},
              hides=("7.8333", "7.833")),
        Wrong({f"{QC}-ex3-answer": "expected_read_ms = 'about 8 ms'\nsmallest_w = 7"},
              {f"{QC}-ex3-tests": "is not a positive number of milliseconds"},
              hides=("7.8333", "7.833")),
    ],
    "distributed-data/consistent-hashing": [
        Wrong({f"{(CH := 'consistent-hashing')}-ex1-answer": (
                   ("if self.load[node] < capacity:", "if self.load[node] <= capacity:"),),
               f"{CH}-ex2-answer": "chosen_vnodes = 60",
               f"{CH}-ex3-answer": (("moved_one_by_one = keys / 10 + keys / 11 + keys / 12",
                                     "moved_one_by_one = 3 * keys / 12"),)},
              {f"{CH}-ex1-tests": "below the capacity means strictly below",
               f"{CH}-ex2-tests": "your setting only just works",
               f"{CH}-ex3-tests": "as if they joined at once"},
              hides=("329090", "329091", "900000", "9e+05")),
        Wrong({f"{CH}-ex1-answer": (("        if key in self.assigned:\n"
                                     "            return self.assigned[key]\n", ""),),
               f"{CH}-ex2-answer": "chosen_vnodes = 1000",
               f"{CH}-ex3-answer": (("moved_modulo = keys * (1 - 9 / math.lcm(9, 12))",
                                     "moved_modulo = keys * 9 / math.lcm(9, 12)"),)},
              {f"{CH}-ex1-tests": "a key assigned again was counted again",
               f"{CH}-ex2-tests": "over the budget of 512",
               f"{CH}-ex3-tests": "counts the keys that stay"},
              hides=("329090", "329091", "900000", "9e+05")),
        Wrong({f"{CH}-ex1-answer": (("                self.load[node] += 1\n", ""),),
               f"{CH}-ex2-answer": "chosen_vnodes = 8",
               f"{CH}-ex3-answer": (("moved_one_by_one = keys / 10 + keys / 11 + keys / 12",
                                     "moved_one_by_one = keys / 9 + keys / 10 + keys / 11"),)},
              {f"{CH}-ex1-tests": "the loads never grew",
               f"{CH}-ex2-tests": "too few points per node",
               f"{CH}-ex3-tests": "dividing by N counts"},
              hides=("329090", "329091", "900000", "9e+05")),
    ],
    "architectural/event-driven-architecture": [
        Wrong({f"{(EDA := 'event-driven-architecture')}-ex1-answer": (
                   ("        if len(self.seen) > self.capacity:\n"
                    "            self.seen.popitem(last=False)\n", ""),),
               f"{EDA}-ex2-answer": "chosen_sync_steps = 2\nchosen_consumers = 3",
               f"{EDA}-ex3-answer": "sync_availability = 0.9995\nsync_mean_latency_s = 0.175\n"
                                    "async_acceptance = 0.9995 * 0.9999\n"
                                    "drain_s = 50 * 600 / (2 * 40 - 50)"},
              {f"{EDA}-ex1-tests": "seen grew past capacity",
               f"{EDA}-ex2-tests": "a service called synchronously is down",
               f"{EDA}-ex3-tests": "that is the front door alone"},
              hides=("0.99550", "0.99940")),
        Wrong({f"{EDA}-ex1-answer": (("        if event.id in self.seen:",
                                      "        if False:"),),
               f"{EDA}-ex2-answer": "chosen_sync_steps = 0\nchosen_consumers = 2",
               f"{EDA}-ex3-answer": "sync_availability = 0.9995 * 0.999**4\n"
                                    "sync_mean_latency_s = 0.175\n"
                                    "async_acceptance = 0.9995 * 0.9999\ndrain_s = 600.0"},
              {f"{EDA}-ex1-tests": "a repeated id must be skipped",
               f"{EDA}-ex2-tests": "the capacity left over after the new arrivals",
               f"{EDA}-ex3-tests": "that is the outage itself"},
              hides=("0.99550", "0.99940")),
        Wrong({f"{EDA}-ex1-answer": (("popitem(last=False)", "popitem()"),),
               f"{EDA}-ex3-answer": "sync_availability = 0.9995 * 0.999**4\n"
                                    "sync_mean_latency_s = 0.175\n"
                                    "async_acceptance = 0.9995 * 0.9999\n"
                                    "drain_s = 50 * 600 / 80"},
              {f"{EDA}-ex1-tests": "the newest id was dropped instead of the oldest",
               f"{EDA}-ex3-tests": "new orders keep arriving while it drains"},
              hides=("0.99550", "0.99940")),
        Wrong({f"{EDA}-ex3-answer": "sync_availability = 0.9995 * 0.999**4\n"
                                    "sync_mean_latency_s = 0.175\n"
                                    "async_acceptance = 0.9995 * 0.9999\n"
                                    "drain_s = 'about a quarter of an hour'"},
              {f"{EDA}-ex3-tests": "drain_s must be a number"},
              hides=("0.99550", "0.99940")),
    ],
    "architectural/shared-nothing-scale-out": [
        Wrong({f"{(SN := 'shared-nothing-scale-out')}-ex1-answer": (
                   ("        return bisect.bisect_right(self.boundaries, key)",
                    "        return bisect.bisect_left(self.boundaries, key)"),),
               f"{SN}-ex2-answer": "chosen_nodes = 16\nchosen_cross_fraction = 0.25",
               f"{SN}-ex3-answer": "import math\nsigma, kappa = 0.03, 0.0004\n"
                                   "peak_nodes = math.sqrt(1 / kappa)\n"
                                   "amdahl_ceiling = 1 / sigma\ncapacity_at_peak = 14.49"},
              {f"{SN}-ex1-tests": "bisect_left puts it in the node below",
               f"{SN}-ex2-tests": "under 1000",
               f"{SN}-ex3-tests": "the contention term is missing"},
              hides=("49.24", "33.33", "14.49")),
        Wrong({f"{SN}-ex1-answer": (
                   ("        last = bisect.bisect_left(self.boundaries, high)",
                    "        last = bisect.bisect_right(self.boundaries, high)"),),
               f"{SN}-ex2-answer": "chosen_nodes = 32\nchosen_cross_fraction = 0.25",
               f"{SN}-ex3-answer": "import math\nsigma, kappa = 0.03, 0.0004\n"
                                   "peak_nodes = math.sqrt((1 - sigma) / kappa)\n"
                                   "amdahl_ceiling = 1 / (1 - sigma)\ncapacity_at_peak = 14.49"},
              {f"{SN}-ex1-tests": "high is excluded",
               f"{SN}-ex2-tests": "past the knee",
               f"{SN}-ex3-tests": "from the parallel share 1 − σ"},
              hides=("49.24", "33.33", "14.49")),
        Wrong({f"{SN}-ex2-answer": "chosen_nodes = 20\nchosen_cross_fraction = 0.1",
               f"{SN}-ex3-answer": "import math\nsigma, kappa = 0.03, 0.0004\n"
                                   "peak_nodes = math.sqrt((1 - sigma) / kappa)\n"
                                   "amdahl_ceiling = 1 / sigma\n"
                                   "capacity_at_peak = "
                                   "peak_nodes / (1 + sigma * (peak_nodes - 1))"},
              {f"{SN}-ex2-tests": "at least a quarter of requests stay multi-partition",
               f"{SN}-ex3-tests": "the coherency term is missing"},
              hides=("49.24", "33.33", "14.49")),
        Wrong({f"{SN}-ex3-answer": (("peak_nodes = math.sqrt((1 - sigma) / kappa)",
                                     "peak_nodes = True"),)},
              {f"{SN}-ex3-tests": "peak_nodes must be a positive number"},
              hides=("49.24", "33.33", "14.49")),
    ],
    "architectural/cqrs": [
        Wrong({f"{(CQ := 'cqrs')}-ex1-answer": (
                   ("self.store.checkpoint < self.tokens.get(key, 0)",
                    "self.store.checkpoint <= self.tokens.get(key, 0)"),),
               f"{CQ}-ex2-answer": "chosen_partitions = 2",
               f"{CQ}-ex3-answer": (("p_stale_50ms = math.exp(-spare * 0.05)",
                                     "p_stale_50ms = math.exp(-1000.0 * 0.05)"),)},
              {f"{CQ}-ex1-tests": "other keys always read the view",
               f"{CQ}-ex2-tests": "not under 1 %",
               f"{CQ}-ex3-tests": "the spare capacity μ − λ, not μ"},
              hides=("0.00673", "0.04605", "0.00367", "0.00368")),
        Wrong({f"{CQ}-ex1-answer": (("self.tokens.get(key, 0)", "self.token"),),
               f"{CQ}-ex2-answer": "chosen_partitions = 4",
               f"{CQ}-ex3-answer": (("p99_lag_s = math.log(100) / spare", "p99_lag_s = 0.01"),)},
              {f"{CQ}-ex1-tests": "only keys this session wrote have a token",
               f"{CQ}-ex2-tests": "choose the fewest",
               f"{CQ}-ex3-tests": "not its 99th percentile"},
              hides=("0.00673", "0.04605", "0.00367", "0.00368")),
        Wrong({f"{CQ}-ex1-answer": (("            self.routed.append(\"write_side\")\n", ""),),
               f"{CQ}-ex2-answer": "chosen_partitions = 1",
               f"{CQ}-ex3-answer": (("mean_token_wait_s = math.exp(-spare * 0.01) / spare",
                                     "mean_token_wait_s = math.exp(-1.0)"),)},
              {f"{CQ}-ex1-tests": "append the side each read used",
               f"{CQ}-ex2-tests": "not under 60 ms",
               f"{CQ}-ex3-tests": "the share of reads that wait"},
              hides=("0.00673", "0.04605", "0.00367", "0.00368")),
        Wrong({f"{CQ}-ex3-answer": (("mean_token_wait_s = math.exp(-spare * 0.01) / spare",
                                     "mean_token_wait_s = None"),)},
              {f"{CQ}-ex3-tests": "mean_token_wait_s must be a number"},
              hides=("0.00673", "0.04605", "0.00367", "0.00368")),
    ],
    "architectural/serverless": [
        Wrong({f"{(SRVL := 'serverless')}-ex1-answer": (
                   ("min(self.cap_s, max(self.recent) * (1 + self.margin))",
                    "min(self.cap_s, sum(self.recent) / len(self.recent) * (1 + self.margin))"),),
               f"{SRVL}-ex2-answer": "chosen_margin = 0.1\nchosen_bin_s = 60.0",
               f"{SRVL}-ex3-answer": "rate = 240\np_cold = math.exp(-rate * 360)\n"
                                     "idle_per_call_s = (1 - math.exp(-rate * 360)) / rate\n"
                                     "tau_for_2pct_s = math.log(50) / rate"},
              {f"{SRVL}-ex1-tests": "that is the mean of the recent idle times",
               f"{SRVL}-ex2-tests": "the instance is reloaded too early",
               f"{SRVL}-ex3-tests": "λ is a rate"},
              hides=("0.2231", "186.4", "938.8")),
        Wrong({f"{SRVL}-ex1-answer": (("            self.recent.pop(0)\n", "            pass\n"),),
               f"{SRVL}-ex2-answer": "chosen_margin = 0.0\nchosen_bin_s = 1.0",
               f"{SRVL}-ex3-answer": "rate = 1 / 240\np_cold = math.exp(-rate * 360)\n"
                                     "idle_per_call_s = 360.0\n"
                                     "tau_for_2pct_s = math.log(50) / rate"},
              {f"{SRVL}-ex1-tests": "old idle times were never dropped",
               f"{SRVL}-ex2-tests": "the pre-warm window ends after some calls arrive",
               f"{SRVL}-ex3-tests": "does not idle the whole window"},
              hides=("0.2231", "186.4", "938.8")),
        Wrong({f"{SRVL}-ex1-answer": (
                   ("min(self.cap_s, max(self.recent) * (1 + self.margin))",
                    "max(self.recent) * (1 + self.margin)"),),
               f"{SRVL}-ex2-answer": "chosen_margin = 0.0\nchosen_bin_s = 600.0",
               f"{SRVL}-ex3-answer": "rate = 1 / 240\np_cold = math.exp(-rate * 360)\n"
                                     "idle_per_call_s = (1 - math.exp(-rate * 360)) / rate\n"
                                     "tau_for_2pct_s = -math.log(0.98) / rate"},
              {f"{SRVL}-ex1-tests": "goes over cap_s",
               f"{SRVL}-ex2-tests": "the instance is reloaded too early",
               f"{SRVL}-ex3-tests": "2 % of the calls warm"},
              hides=("0.2231", "186.4", "938.8")),
        Wrong({f"{SRVL}-ex3-answer": "rate = 1 / 240\np_cold = math.exp(-rate * 360)\n"
                                     "idle_per_call_s = (1 - math.exp(-rate * 360)) / rate\n"
                                     "tau_for_2pct_s = math.log(50) * 4"},
              {f"{SRVL}-ex3-tests": "units: that is in minutes"},
              hides=("0.2231", "186.4", "938.8")),
        Wrong({f"{SRVL}-ex3-answer": "rate = 1 / 240\np_cold = 1 - math.exp(-rate * 360)\n"
                                     "idle_per_call_s = (1 - math.exp(-rate * 360)) / rate\n"
                                     "tau_for_2pct_s = math.log(50) / rate"},
              {f"{SRVL}-ex3-tests": "the probability of a warm start"},
              hides=("0.2231", "186.4", "938.8")),
        Wrong({f"{SRVL}-ex3-answer": "rate = 1 / 240\np_cold = 'rare'\n"
                                     "idle_per_call_s = (1 - math.exp(-rate * 360)) / rate\n"
                                     "tau_for_2pct_s = math.log(50) / rate"},
              {f"{SRVL}-ex3-tests": "p_cold must be a number"},
              hides=("0.2231", "186.4", "938.8")),
    ],
    "architectural/edge-computing": [
        Wrong({f"{(EC := 'edge-computing')}-ex1-answer": (
                   ("            if self.rtt_s[region][site] > nearest + self.max_extra_rtt_s:\n"
                    "                break\n", ""),),
               f"{EC}-ex2-answer": "chosen_sites = 2",
               f"{EC}-ex3-answer": "mean_latency_ms_k1 = 178.0\nmean_latency_ms_k2 = 430.0\n"
                                   "better_choice = 'central'"},
              {f"{EC}-ex1-tests": "outside the budget",
               f"{EC}-ex2-tests": "the round trip dominates",
               f"{EC}-ex3-tests": "its own M/M/1 queue"},
              hides=("180.9", "177.8")),
        Wrong({f"{EC}-ex1-answer": (
                   ("nearest = self.rtt_s[region][self.order[region][0]]",
                    "nearest = min(self.rtt_s[region][s] for s in self.order[region]"
                    " if self.healthy(s))"),),
               f"{EC}-ex2-answer": "chosen_sites = 6",
               f"{EC}-ex3-answer": "from simulations.theory import mmc_mean_response\n"
                                   "mean_latency_ms_k1 = 60 + 1000 * mmc_mean_response(60, 10, 8)\n"
                                   "mean_latency_ms_k2 = 80.94339622641509\n"
                                   "better_choice = 'central'"},
              {f"{EC}-ex1-tests": "healthy or not",
               f"{EC}-ex2-tests": "too many sites",
               f"{EC}-ex3-tests": "the service time itself"},
              hides=("180.9", "177.8")),
        Wrong({f"{EC}-ex3-answer": "from simulations.theory import mmc_mean_response\n"
                                   "mean_latency_ms_k1 = 60 + 1000 * mmc_mean_response(60, 10, 8)\n"
                                   "mean_latency_ms_k2 = 30 + 1000 * mmc_mean_response(30, 10, 4)\n"
                                   "better_choice = 'edge'"},
              {f"{EC}-ex3-tests": "the 30 ms saved on the round trip"},
              hides=("180.9", "177.8")),
        Wrong({f"{EC}-ex3-answer": "mean_latency_ms_k1 = None\nmean_latency_ms_k2 = 200.0\n"
                                   "better_choice = 'central'"},
              {f"{EC}-ex3-tests": "mean_latency_ms_k1 must be a number of milliseconds"},
              hides=("180.9", "177.8")),
    ],
    "architectural/cell-based-architecture": [
        Wrong({f"{(CBA := 'cell-based-architecture')}-ex1-answer": (
                   ("            return self.pins[customer]\n",
                    "            return super().route(customer)\n"),),
               f"{CBA}-ex2-answer": "servers = 30\ncells = 6",
               f"{CBA}-ex3-answer": "p_down = 0.3\np_touched = 0.9"},
              {f"{CBA}-ex1-tests": "the pin is ignored",
               f"{CBA}-ex2-tests": "not under 10 ms",
               f"{CBA}-ex3-tests": "the share of the fleet in one shard"},
              hides=("0.0083", "0.708", "120")),
        Wrong({f"{CBA}-ex1-answer": (
                   ("        if not (isinstance(cell, int) and 0 <= cell < self.cells):\n"
                    "            raise ValueError(f\"cell must be in 0 .. {self.cells - 1} "
                    "(got {cell!r})\")\n", ""),),
               f"{CBA}-ex2-answer": "servers = 36\ncells = 4",
               f"{CBA}-ex3-answer": "p_down = 1 / 45\np_touched = 1 - 35 / 120"},
              {f"{CBA}-ex1-tests": "should raise ValueError",
               f"{CBA}-ex2-tests": "over 17 %",
               f"{CBA}-ex3-tests": "that counts pairs of workers"},
              hides=("0.0083", "0.708", "120")),
        Wrong({f"{CBA}-ex2-answer": "servers = 48\ncells = 6",
               f"{CBA}-ex3-answer": "from math import comb\n\np_down = 1 / comb(10, 3)\n"
                                    "p_touched = 1 - 0.7 ** 3"},
              {f"{CBA}-ex2-tests": "over the budget of 36",
               f"{CBA}-ex3-tests": "with replacement"},
              hides=("0.0083", "0.708", "120")),
        Wrong({f"{CBA}-ex3-answer": "p_down = 'one in many'\np_touched = 0.5"},
              {f"{CBA}-ex3-tests": "p_down must be a probability"},
              hides=("0.0083", "0.708", "120")),
    ],
    "security/token-validation": [
        Wrong({f"{(TV := 'token-validation')}-ex1-answer": (
                   ("ttl = min(self.cache_ttl_s, answer[\"exp\"] - now)",
                    "ttl = answer[\"exp\"] - now"),),
               f"{TV}-ex2-answer": "chosen_ttl_s = 5.0",
               f"{TV}-ex3-answer": "hit_ratio = 0.9\nadded_latency_ms = (1 - 0.9) * 4.0\n"
                                   "issuer_qps = (1 - 0.9) * 2000.0\n"
                                   "worst_revocation_s = 10 * 60 + 30.0"},
              {f"{TV}-ex1-tests": "longer than cache_ttl_s",
               f"{TV}-ex2-tests": "too many requests miss the cache",
               f"{TV}-ex3-tests": "1 − 1/(rate·TTL) is not the hit ratio"},
              hides=("0.909", "0.3636", "181.8", "630")),
        Wrong({f"{TV}-ex1-answer": (("            ttl = self.negative_ttl_s",
                                     "            ttl = 0"),),
               f"{TV}-ex2-answer": "chosen_ttl_s = 30.0",
               f"{TV}-ex3-answer": "hit_ratio = 10 / 11\nadded_latency_ms = (1 - 10 / 11) * 4.0\n"
                                   "issuer_qps = (1 - 10 / 11) * 2000.0\n"
                                   "worst_revocation_s = 600.0"},
              {f"{TV}-ex1-tests": "inactive answers must be cached too",
               f"{TV}-ex2-tests": "the TTL bounds that delay",
               f"{TV}-ex3-tests": "the leeway is forgotten"},
              hides=("0.909", "0.3636", "181.8", "630")),
        Wrong({f"{TV}-ex1-answer": (("            ttl = self.negative_ttl_s",
                                     "            ttl = self.cache_ttl_s"),),
               f"{TV}-ex3-answer": "hit_ratio = 10 / 11\nadded_latency_ms = 10 / 11 * 4.0\n"
                                   "issuer_qps = (1 - 10 / 11) * 2000.0\n"
                                   "worst_revocation_s = 630.0"},
              {f"{TV}-ex1-tests": "not cache_ttl_s",
               f"{TV}-ex3-tests": "it is the misses that pay it"},
              hides=("0.909", "0.3636", "181.8", "630")),
    ],
    "security/rate-limiting": [
        Wrong({f"{(RL := 'rate-limiting')}-ex1-answer": (
                   ("self.previous = self.current if k == self.window + 1 else 0",
                    "self.previous = 0"),),
               f"{RL}-ex2-answer": "chosen = RateLimitConfig(rate=2.0, burst=20)",
               f"{RL}-ex3-answer": "token_bucket_max = 8 * 30\nfixed_window_max = 2 * 240"},
              {f"{RL}-ex1-tests": "was not carried over",
               f"{RL}-ex2-tests": "cannot hold a client's burst",
               f"{RL}-ex3-tests": "only r·t"},
              hides=("280", "480")),
        Wrong({f"{RL}-ex1-answer": (("self.previous * (1 - gone)", "self.previous * gone"),),
               f"{RL}-ex2-answer": "chosen = RateLimitConfig(rate=4.0, burst=50)",
               f"{RL}-ex3-answer": "token_bucket_max = 40 + 8 * 30\nfixed_window_max = 240"},
              {f"{RL}-ex1-tests": "weighted by f instead of 1 − f",
               f"{RL}-ex2-tests": "r is the knob that matters here",
               f"{RL}-ex3-tests": "one window only"},
              hides=("280", "480")),
        Wrong({f"{RL}-ex1-answer": (
                   ("        if math.floor(estimate) + 1 <= self.limit:\n"
                    "            self.current += 1\n            return True\n        return False",
                    "        self.current += 1\n"
                    "        return math.floor(estimate) + 1 <= self.limit"),),
               f"{RL}-ex3-answer": "token_bucket_max = 40 * 30\nfixed_window_max = 2 * 240"},
              {f"{RL}-ex1-tests": "the refused requests were counted",
               f"{RL}-ex3-tests": "b·t mixes units"},
              hides=("280", "480")),
    ],
    "security/secrets-rotation": [
        Wrong({f"{(SR := 'secrets-rotation')}-ex1-answer": (
                   ("now >= self.replaced_at[kid] + self.grace_s",
                    "now > self.replaced_at[kid] + self.grace_s"),),
               f"{SR}-ex2-answer": "chosen_ttl_s = 600.0\nchosen_fraction = 0.5\n"
                                   "chosen_jitter = 0.0",
               f"{SR}-ex3-answer": "cycle = 0.6 * 900\nissuer_qps = 1 / 900\n"
                                   "mean_exposure_s = 900 - cycle / 2\n"
                                   "mean_c = cycle * (1 - 0.5 / 2)\n"
                                   "mean_c2 = cycle**2 * (1 - 0.5 + 0.5**2 / 3)\n"
                                   "jittered_mean_exposure_s = 900 - mean_c2 / (2 * mean_c)"},
              {f"{SR}-ex1-tests": "(>=, not >)",
               f"{SR}-ex2-tests": "not under 400 s",
               f"{SR}-ex3-tests": "one client's renewal rate"},
              hides=("2.222", "630", "690")),
        Wrong({f"{SR}-ex1-answer": (
                   ('return None if hmac.compare_digest(expected, tag) else "bad signature"',
                    "return None"),),
               f"{SR}-ex2-answer": "chosen_ttl_s = 300.0\nchosen_fraction = 0.3\n"
                                   "chosen_jitter = 0.3",
               f"{SR}-ex3-answer": "cycle = 0.6 * 900\nissuer_qps = 1200 / cycle\n"
                                   "mean_exposure_s = 900 / 2\n"
                                   "mean_c = cycle * (1 - 0.5 / 2)\n"
                                   "mean_c2 = cycle**2 * (1 - 0.5 + 0.5**2 / 3)\n"
                                   "jittered_mean_exposure_s = 900 - mean_c2 / (2 * mean_c)"},
              {f"{SR}-ex1-tests": "the tag must be checked",
               f"{SR}-ex2-tests": "must outlast the 200 s outage",
               f"{SR}-ex3-tests": "TTL/2, which holds only"},
              hides=("2.222", "630", "690")),
        Wrong({f"{SR}-ex1-answer": (
                   ('        if now >= version.expires_at:\n            return "expired"\n'
                    '        if kid in self.replaced_at and now >= self.replaced_at[kid] + '
                    'self.grace_s:\n            return "grace over"\n',
                    '        if kid in self.replaced_at and now >= self.replaced_at[kid] + '
                    'self.grace_s:\n            return "grace over"\n'
                    '        if now >= version.expires_at:\n            return "expired"\n'),),
               f"{SR}-ex2-answer": "chosen_ttl_s = 450.0\nchosen_fraction = 0.5\n"
                                   "chosen_jitter = 0.0",
               f"{SR}-ex3-answer": "cycle = 0.6 * 900\nissuer_qps = 1200 / cycle\n"
                                   "mean_exposure_s = 900 - cycle / 2\n"
                                   "jittered_mean_exposure_s = 900 - 0.75 * cycle / 2"},
              {f"{SR}-ex1-tests": "check expiry before the grace period",
               f"{SR}-ex2-tests": "lock step",
               f"{SR}-ex3-tests": "length-biased sampling"},
              hides=("2.222", "630", "690")),
        Wrong({f"{SR}-ex3-answer": "cycle = 0.6 * 900\nissuer_qps = 1200 / 900\n"
                                   "mean_exposure_s = 900 - cycle / 2\n"
                                   "mean_c = cycle * (1 - 0.5 / 2)\n"
                                   "mean_c2 = cycle**2 * (1 - 0.5 + 0.5**2 / 3)\n"
                                   "jittered_mean_exposure_s = 900 - mean_c2 / (2 * mean_c)"},
              {f"{SR}-ex3-tests": "that is clients/TTL"},
              hides=("2.222", "630", "690")),
    ],
    "security/envelope-encryption": [
        Wrong({f"{(EE := 'envelope-encryption')}-ex1-answer": (
                   ("key.bytes + nbytes > self.max_bytes",
                    "key.bytes + nbytes >= self.max_bytes"),),
               f"{EE}-ex2-answer": "chosen_max_messages = 100\nchosen_max_age_s = 1.0",
               f"{EE}-ex3-answer": "calls_per_s_a = 600.0\ncalls_per_s_b = 8 / (10 + 8 / 40)\n"
                                   "blast_b = 1 + (40 / 8) * 10"},
              {f"{EE}-ex1-tests": "a message that fills the budget exactly still fits",
               f"{EE}-ex2-tests": "each client's key must serve more messages",
               f"{EE}-ex3-tests": "one call per message"},
              hides=("0.7843", "51.0")),
        Wrong({f"{EE}-ex1-answer": (
                   ("            self.current = None\n            return None\n",
                    "            return None\n"),),
               f"{EE}-ex2-answer": "chosen_max_messages = 400\nchosen_max_age_s = 1.0",
               f"{EE}-ex3-answer": "calls_per_s_a = 600 / 1000\ncalls_per_s_b = 40 / 1000\n"
                                   "blast_b = 1 + (40 / 8) * 10"},
              {f"{EE}-ex1-tests": "take must evict the key",
               f"{EE}-ex2-tests": "over the blast-radius budget",
               f"{EE}-ex3-tests": "the message limit does not bind here"},
              hides=("0.7843", "51.0")),
        Wrong({f"{EE}-ex1-answer": (
                   ("key is None or not self.usable(key, self.clock())\n", "key is None\n"),),
               f"{EE}-ex3-answer": "calls_per_s_a = 600 / 1000\ncalls_per_s_b = 8 / (10 + 8 / 40)\n"
                                   "blast_b = (40 / 8) * 10"},
              {f"{EE}-ex1-tests": "keep the lesson's rules",
               f"{EE}-ex3-tests": "the message that opened the key counts too"},
              hides=("0.7843", "51.0")),
    ],
    "security/zero-trust-mtls": [
        Wrong({f"{(ZT := 'zero-trust-mtls')}-ex1-answer": (
                   ("    try:\n        cert.verify_directly_issued_by(ca)\n"
                    "    except (ValueError, TypeError, InvalidSignature) as error:\n"
                    "        raise PermissionError(f\"not issued by our CA: {error}\") from None\n",
                    ""),),
               f"{ZT}-ex2-answer": "chosen_max_age_s = 20.0\nchosen_ticket_lifetime_s = 0.0",
               f"{ZT}-ex3-answer": "added_tls13_ms = 0.65 * 1 * 3.2 * 5\n"
                                   "added_tls12_ms = (1 - 0.65) * 2 * 3.2 * 5\n"
                                   "q_needed_tls12 = 1 - (1 - 0.65) / 2"},
              {f"{ZT}-ex1-tests": "anyone can make a CA",
               f"{ZT}-ex2-tests": "only if the ticket is still fresh",
               f"{ZT}-ex3-tests": "counts the hops that reuse a connection"},
              hides=("11.2", "0.825")),
        Wrong({f"{ZT}-ex1-answer": (
                   ("    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:\n"
                    "        raise PermissionError(\"the certificate is not valid now\")\n", ""),),
               f"{ZT}-ex2-answer": "chosen_max_age_s = 5.0\nchosen_ticket_lifetime_s = 600.0",
               f"{ZT}-ex3-answer": "added_tls13_ms = (1 - 0.65) * 1 * 3.2 * 5\n"
                                   "added_tls12_ms = (1 - 0.65) * 1 * 3.2 * 5\n"
                                   "q_needed_tls12 = 1 - (1 - 0.65) / 2"},
              {f"{ZT}-ex1-tests": "check not_valid_before_utc",
               f"{ZT}-ex2-tests": "q grows with the calls one connection serves",
               f"{ZT}-ex3-tests": "takes two round trips, not one"},
              hides=("11.2", "0.825")),
        Wrong({f"{ZT}-ex1-answer": (("        if name in allowed:\n            return name\n",
                                     "        return name\n"),),
               f"{ZT}-ex2-answer": "chosen_max_age_s = 30.0\nchosen_ticket_lifetime_s = 600.0",
               f"{ZT}-ex3-answer": "added_tls13_ms = (1 - 0.65) * 1 * 3.2\n"
                                   "added_tls12_ms = (1 - 0.65) * 2 * 3.2 * 5\n"
                                   "q_needed_tls12 = 0.65 / 2"},
              {f"{ZT}-ex1-tests": "authentication is not authorization",
               f"{ZT}-ex2-tests": "to every connection within 20 s",
               f"{ZT}-ex3-tests": "halves the reuse ratio"},
              hides=("11.2", "0.825")),
    ],
    "communication/publish-subscribe": [
        Wrong({f"{(PS := 'publish-subscribe')}-ex1-answer": (
                   ("if now - delivered_at >= min_idle_s:",
                    "if now - delivered_at > min_idle_s:"),),
               f"{PS}-ex2-answer": "chosen_partitions = 2\nchosen_serialize_once = True",
               f"{PS}-ex3-answer": "p_all_by_t = 0.995\negress_cps = 60 * 250.0\n"
                                   "sender_load = 250.0 / 4 * 60 * (0.0001 + 0.0002)"},
              {f"{PS}-ex1-tests": "is enough (Redis skips",
               f"{PS}-ex2-tests": "near full load",
               f"{PS}-ex3-tests": "one subscriber's chance"},
              hides=("0.7402", "1.125", "15000")),
        Wrong({f"{PS}-ex1-answer": (
                   ("        if entry_id not in self.pending:\n            return False\n"
                    "        del self.pending[entry_id]\n",
                    "        self.pending.pop(entry_id, None)\n"),),
               f"{PS}-ex2-answer": "chosen_partitions = 4\nchosen_serialize_once = False",
               f"{PS}-ex3-answer": "p_all_by_t = 0.995**60\negress_cps = 250.0\n"
                                   "sender_load = 250.0 / 4 * 60 * (0.0001 + 0.0002)"},
              {f"{PS}-ex1-tests": "it must return False",
               f"{PS}-ex2-tests": "cannot keep up",
               f"{PS}-ex3-tests": "egress counts copies"},
              hides=("0.7402", "1.125", "15000")),
        Wrong({f"{PS}-ex1-answer": (
                   ("(consumer, now, deliveries + 1)",
                    "(consumer, delivered_at, deliveries + 1)"),),
               f"{PS}-ex3-answer": "p_all_by_t = 0.995**60\negress_cps = 60 * 250.0\n"
                                   "sender_load = 250.0 * 60 * (0.0001 + 0.0002)"},
              {f"{PS}-ex1-tests": "delivered_at = now",
               f"{PS}-ex3-tests": "every message on one sender"},
              hides=("0.7402", "1.125", "15000")),
    ],
    "communication/saga": [
        Wrong({f"{(SG := 'saga')}-ex1-answer": (("if i <= self.pivot:", "if True:"),),
               f"{SG}-ex2-answer": "chosen_order = (0, 1, 2, 3)\nchosen_attempts = 1",
               f"{SG}-ex3-answer": "expected_compensations = 0.8\n"
                                   "twopc_max_tps = 1 / (0.0005 + 2 * 0.004 + 3 * 0.0012)\n"
                                   "saga_max_tps = 1 / (0.0005 + 0.0012)"},
              {f"{SG}-ex1-tests": "after the pivot the saga must go forward",
               f"{SG}-ex2-tests": "every transient failure of the payment aborts",
               f"{SG}-ex3-tests": "every step before it succeeded"},
              hides=("0.642", "82.64", "588.2")),
        Wrong({f"{SG}-ex1-answer": (("in reversed(done):", "in done:"),),
               f"{SG}-ex2-answer": "chosen_order = (0, 1, 2, 3)\nchosen_attempts = 2",
               f"{SG}-ex3-answer": "p = [0.05, 0.1, 0.2, 0.1]\n"
                                   "reach = 1.0\n"
                                   "expected_compensations = 0.0\n"
                                   "for i, p_i in enumerate(p):\n"
                                   "    expected_compensations += i * reach * p_i\n"
                                   "    reach *= 1 - p_i\n"
                                   "twopc_max_tps = 1 / (0.0005 + 0.004 + 3 * 0.0012)\n"
                                   "saga_max_tps = 1 / (0.0005 + 0.0012)"},
              {f"{SG}-ex1-tests": "newest first",
               f"{SG}-ex2-tests": "where the step most likely to fail runs",
               f"{SG}-ex3-tests": "one round trip"},
              hides=("0.642", "82.64", "588.2")),
        Wrong({f"{SG}-ex2-answer": "chosen_order = (2, 0, 1, 3)\nchosen_attempts = 3",
               f"{SG}-ex3-answer": "p = [0.05, 0.1, 0.2, 0.1]\n"
                                   "reach = 1.0\n"
                                   "expected_compensations = 0.0\n"
                                   "for i, p_i in enumerate(p):\n"
                                   "    expected_compensations += i * reach * p_i\n"
                                   "    reach *= 1 - p_i\n"
                                   "twopc_max_tps = 1 / (0.0005 + 2 * 0.004 + 3 * 0.0012)\n"
                                   "saga_max_tps = 1 / 0.0005"},
              {f"{SG}-ex2-tests": "each extra attempt adds a longer backoff",
               f"{SG}-ex3-tests": "forced to the log too"},
              hides=("0.642", "82.64", "588.2")),
    ],
    "communication/push-vs-polling": [
        Wrong({f"{(PP := 'push-vs-polling')}-ex1-answer": (
                   ("            self.interval_s = min(2 * self.interval_s, self.max_interval_s)",
                    "            self.interval_s = self.interval_s"),),
               f"{PP}-ex2-answer": "chosen_interval_s = 2.0\nchosen_jitter = 0.0",
               f"{PP}-ex3-answer": "import math\nrequests_per_s = 24_000 * 20\n"
                                   "empty_fraction = math.exp(-0.01 * 20)\n"
                                   "interval_s = 2 * (2.5 - 0.1)"},
              {f"{PP}-ex1-tests": "double it after an empty poll",
               f"{PP}-ex2-tests": "spread them with more jitter",
               f"{PP}-ex3-tests": "this grows with it"},
              hides=("0.81873", "4.8")),
        Wrong({f"{PP}-ex1-answer": (("        self.next_at = self.clock() + self.interval_s\n",
                                     ""),),
               f"{PP}-ex2-answer": "chosen_interval_s = 0.5\nchosen_jitter = 1.0",
               f"{PP}-ex3-answer": "import math\nrequests_per_s = 24_000 / 20\n"
                                   "empty_fraction = math.exp(-0.01)\n"
                                   "interval_s = 2 * (2.5 - 0.1)"},
              {f"{PP}-ex1-tests": "set next_at from the new interval",
               f"{PP}-ex2-tests": "the interval is too short",
               f"{PP}-ex3-tests": "not in one polling interval"},
              hides=("0.81873", "4.8")),
        Wrong({f"{PP}-ex3-answer": "import math\nrequests_per_s = 24_000 / 20\n"
                                   "empty_fraction = math.exp(-0.01 * 20)\n"
                                   "interval_s = 2 * 2.5"},
              {f"{PP}-ex3-tests": "the one-way delay is missing"},
              hides=("0.81873", "4.8")),
    ],
    "communication/priority-queue": [
        Wrong({f"{(PQ := 'priority-queue')}-ex1-answer": (
                   ("self.served >= self.weights[self.turn]:",
                    "self.served > self.weights[self.turn]:"),),
               f"{PQ}-ex2-answer": "chosen_aging_s = None",
               f"{PQ}-ex3-answer": "high_wait_s = 0.225\nlow_wait_s = 0.2903225806451613"},
              {f"{PQ}-ex1-tests": "one message too many per turn",
               f"{PQ}-ex2-tests": "the routine class still starves",
               f"{PQ}-ex3-tests": "the FIFO wait of all messages"},
              hides=("0.02903", "0.2903")),
        Wrong({f"{PQ}-ex1-answer": (
                   (" or self.served >= self.weights[self.turn]:", ":"),),
               f"{PQ}-ex2-answer": "chosen_aging_s = 0.1",
               f"{PQ}-ex3-answer": "high_wait_s = 36 * 0.025**2 / 2 / (1 - 9 * 0.025)\n"
                                   "low_wait_s = high_wait_s / (1 - 0.9)"},
              {f"{PQ}-ex1-tests": "that is strict priority",
               f"{PQ}-ex2-tests": "age more slowly",
               f"{PQ}-ex3-tests": "not E[S]²"},
              hides=("0.02903", "0.2903")),
        Wrong({f"{PQ}-ex3-answer": "high_wait_s = 0.0225 / (1 - 0.225)\n"
                                   "low_wait_s = 1000 * 0.0225 / ((1 - 0.225) * (1 - 0.9))"},
              {f"{PQ}-ex3-tests": "a few milliseconds is a few thousandths"},
              hides=("0.02903", "0.2903")),
    ],
    "communication/scatter-gather": [
        Wrong({f"{(SG := 'scatter-gather')}-ex1-answer": (
                   ("if got / total >= min_share:", "if got / total >= 1.0:"),),
               f"{SG}-ex2-answer": "k = 50\ndeadline_s = 0.07",
               f"{SG}-ex3-answer": "mean_all_ms = 5.0\np_any_slow = 0.4"},
              {f"{SG}-ex1-tests": "waited for every shard",
               f"{SG}-ex2-tests": "puts the slowest shard in every query",
               f"{SG}-ex3-tests": "one shard's mean"},
              hides=("21.39", "0.331")),
        Wrong({f"{SG}-ex1-answer": (("if times[i] > deadline_s:", "if times[i] > math.inf:"),),
               f"{SG}-ex2-answer": "k = 45\ndeadline_s = 0.2",
               f"{SG}-ex3-answer": "mean_all_ms = 5.0 * math.log(40)\n"
                                   "p_any_slow = 0.99**40"},
              {f"{SG}-ex1-tests": "the deadline was ignored",
               f"{SG}-ex2-tests": "the deadline is what bounds the tail",
               f"{SG}-ex3-tests": "the harmonic number is ln N"},
              hides=("21.39", "0.331")),
    ],
    "communication/transactional-outbox": [
        Wrong({f"{(TO := 'transactional-outbox')}-ex1-answer": (
                   ("if seq <= last:", "if seq < last:"),),
               f"{TO}-ex2-answer": "chosen_interval_s = 0.5\nchosen_batch_size = 60",
               f"{TO}-ex3-answer": "mean_lag_s = 0.75 + 0.015\n"
                                   "queries_per_hour = 3 * 3600 / 0.75\n"
                                   "max_rate = 120 / 0.75"},
              {f"{TO}-ex1-tests": "compare with <= (at or below)",
               f"{TO}-ex2-tests": "a batch too small for the load",
               f"{TO}-ex3-tests": "does not wait a whole interval"},
              hides=("0.39", "14400", "160.0")),
        Wrong({f"{TO}-ex1-answer": (
                   ("        if seq > last + 1:\n            self.gaps += 1\n"
                    "            return \"gap\"\n", ""),),
               f"{TO}-ex2-answer": "chosen_interval_s = 0.2\nchosen_batch_size = 60",
               f"{TO}-ex3-answer": "mean_lag_s = 0.75 / 2 + 0.015\n"
                                   "queries_per_hour = 3600 / 0.75\n"
                                   "max_rate = 120 / 0.75"},
              {f"{TO}-ex1-tests": "that is a gap",
               f"{TO}-ex2-tests": "rows or not",
               f"{TO}-ex3-tests": "that is one relay"},
              hides=("0.39", "14400", "160.0")),
        Wrong({f"{TO}-ex2-answer": "chosen_interval_s = 0.35\nchosen_batch_size = 60",
               f"{TO}-ex3-answer": "mean_lag_s = 0.75 / 2 + 0.015\n"
                                   "queries_per_hour = 3 * 3600 / 0.75\n"
                                   "max_rate = 120"},
              {f"{TO}-ex2-tests": "waits up to a whole interval",
               f"{TO}-ex3-tests": "that is per poll, not per second"},
              hides=("0.39", "14400", "160.0")),
    ],
    "communication/queue-load-leveling": [
        Wrong({f"{(QLL := 'queue-load-leveling')}-ex1-answer": (
                   ("now - self.ready[0].sent_at > self.ttl_s",
                    "now - self.ready[0].sent_at >= self.ttl_s"),),
               f"{QLL}-ex2-answer": "chosen_workers = 6\nchosen_capacity = 200",
               f"{QLL}-ex3-answer": "capacity_per_s = 6 / 0.020\nbacklog = 600 * 30\n"
                                    "drain_s = backlog / (capacity_per_s - 180)\n"
                                    "kingman_wait_s = 0.8 / (1 - 0.8) * (3 + 0.5) / 2 * 0.040"},
              {f"{QLL}-ex1-tests": "not >=",
               f"{QLL}-ex2-tests": "the bound is too small",
               f"{QLL}-ex3-tests": "the workers were forgotten"},
              hides=("9000", "75.0", "0.28")),
        Wrong({f"{QLL}-ex1-answer": (("        self._expire(now)\n", ""),),
               f"{QLL}-ex2-answer": "chosen_workers = 4\nchosen_capacity = 5000",
               f"{QLL}-ex3-answer": "capacity_per_s = 6 / 0.020\n"
                                    "backlog = (600 - capacity_per_s) * 30\n"
                                    "drain_s = backlog / capacity_per_s\n"
                                    "kingman_wait_s = 0.8 / (1 - 0.8) * (3 + 0.5) / 2 * 0.040"},
              {f"{QLL}-ex1-tests": "call it before dropping expired ones",
               f"{QLL}-ex2-tests": "too few workers for bursty traffic",
               f"{QLL}-ex3-tests": "the steady traffic was forgotten"},
              hides=("9000", "75.0", "0.28")),
        Wrong({f"{QLL}-ex1-answer": (
                   ("        while self.ready and now - self.ready[0].sent_at > self.ttl_s:\n"
                    "            self.expired.append(self.ready.popleft())\n", ""),),
               f"{QLL}-ex3-answer": "capacity_per_s = 6 / 0.020\n"
                                    "backlog = (600 - capacity_per_s) * 30\n"
                                    "drain_s = backlog / (capacity_per_s - 180)\n"
                                    "kingman_wait_s = 0.8 / (1 - 0.8) * (3 + 0.5) * 0.040"},
              {f"{QLL}-ex1-tests": "the expired message was handed out",
               f"{QLL}-ex3-tests": "divide their sum by 2"},
              hides=("9000", "75.0", "0.28")),
    ],
    "capstone/bad-day": [
        Wrong({f"{(BD := 'bad-day')}-ex1-answer": "design = Design()",
               f"{BD}-ex2-answer": "def admit(signals):\n    return True\n",
               f"{BD}-ex3-answer": "calls_per_checkout = 3 + 4\ncalls_with_budget = 3 * 1.15"},
              {f"{BD}-ex1-tests": "on the day of seed 2026",
               f"{BD}-ex2-tests": "the traffic surge was left open",
               f"{BD}-ex3-tests": "added the client's tries to the API tier's attempts"},
              hides=("3.45",)),
        Wrong({f"{BD}-ex1-answer": (('stampede="xfetch"', 'stampede="none"'),),
               f"{BD}-ex2-answer": "def admit(signals):\n    return signals.rate < 1000\n",
               f"{BD}-ex3-answer": "calls_per_checkout = 4\ncalls_with_budget = 3 + 0.15"},
              {f"{BD}-ex1-tests": "during the hot key",
               f"{BD}-ex2-tests": "was left open",
               f"{BD}-ex3-tests": "counted one client try only"},
              hides=("3.45",)),
    ],
    "performance/auto-scaling": [
        Wrong({f"{(AS := 'auto-scaling')}-ex1-answer": (
                   ("return math.ceil(current * ratio)", "return math.floor(current * ratio)"),),
               f"{AS}-ex2-answer": "chosen = Scenario(policy='hpa', threshold=0.6, "
                                   "provisioning_delay_s=300)",
               f"{AS}-ex3-answer": "backlog = 1200 * 90\nreplicas_for_beta = 48"},
              {f"{AS}-ex1-tests": "rounded down: the HPA rounds up",
               f"{AS}-ex2-tests": "capacity arrives too late",
               f"{AS}-ex3-tests": "that is λ·D, every request of the delay"},
              hides=("18000",)),
        Wrong({f"{AS}-ex1-answer": (
                   ("if ratio > 1 + self.up_tolerance or ratio < 1 - self.down_tolerance:",
                    "if abs(ratio - 1) > self.down_tolerance:"),),
               f"{AS}-ex2-answer": "chosen = Scenario(policy='hpa', threshold=0.5, "
                                   "provisioning_delay_s=300)",
               f"{AS}-ex3-answer": "backlog = (1200 - 40 * 25) * 1.5\n"
                                   "replicas_for_beta = math.ceil(48 + 1.5 * 48)"},
              {f"{AS}-ex1-tests": "did you use one tolerance for both directions?",
               f"{AS}-ex2-tests": "over the 880 budget",
               f"{AS}-ex3-tests": "units: the delay went in as 1.5 (minutes)"},
              hides=("18000", "59")),
        Wrong({f"{AS}-ex3-answer": "backlog = (1200 - 40 * 25) * 90\n"
                                   "replicas_for_beta = math.ceil(48 + 1.5 * math.sqrt(1200))"},
              {f"{AS}-ex3-tests": "√λ instead of √R"},
              hides=("59",)),
        Wrong({f"{AS}-ex1-answer": (
                   ("return math.ceil(current * ratio)", "return round(current * ratio)"),),
               f"{AS}-ex2-answer": "chosen = Scenario(policy='predictive', threshold=0.55, "
                                   "provisioning_delay_s=300)"},
              {f"{AS}-ex1-tests": "rounding to the nearest loses the excess",
               f"{AS}-ex2-tests": "over the 880 budget"}),
    ],
    "performance/concurrency-limits": [
        Wrong({f"{(CL := 'concurrency-limits')}-ex1-answer": (
                   ("(1 - self.rtt_min_s / rtt_s)", "(1 - rtt_s / self.rtt_min_s)"),),
               f"{CL}-ex2-answer": "target = Scenario(slowdown_at_s=30.0, slow_factor=3.0)\n"
                                   "chosen = replace(target, limit=15)",
               f"{CL}-ex3-answer": "knee = 0.030 / 0.006\nmax_throughput = 1 / 0.006\n"
                                   "latency_at_40 = max(0.030, 40 * 0.006 - 0.060)"},
              {f"{CL}-ex1-tests": "not rtt_s / rtt_min_s",
               f"{CL}-ex2-tests": "a fixed limit cannot follow it",
               f"{CL}-ex3-tests": "the clients' think time is left out of the loop"},
              hides=(CL_HIDES := ("166.6", "0.18 s", "= 15", "180.0", "180 ms", "0.1666",
                                 "0.0667"))),
        Wrong({f"{CL}-ex1-answer": (
                   ("\n        self.limit = min(self.max_limit, max(self.min_limit, self.limit))",
                    ""),),
               f"{CL}-ex2-answer": "target = Scenario(slowdown_at_s=30.0, slow_factor=3.0)\n"
                                   "chosen = replace(target, limit=12)",
               f"{CL}-ex3-answer": "knee = (0.030 + 0.060) / 0.006\nmax_throughput = 1 / 0.030\n"
                                   "latency_at_40 = max(0.030, 40 * 0.006 - 0.060)"},
              {f"{CL}-ex1-tests": "went past max_limit",
               f"{CL}-ex2-tests": "the limit sits below the knee",
               f"{CL}-ex3-tests": "the rate of one client with no think time"},
              hides=CL_HIDES),
        Wrong({f"{CL}-ex1-answer": (("self.limit /= 2", "self.limit *= 0.9"),),
               f"{CL}-ex2-answer": "target = Scenario(slowdown_at_s=30.0, slow_factor=3.0)\n"
                                   "chosen = replace(target, policy='aimd', limit=4, "
                                   "aimd_timeout_s=5.0)",
               f"{CL}-ex3-answer": "knee = (0.030 + 0.060) / 0.006\nmax_throughput = 1 / 0.006\n"
                                   "latency_at_40 = 40 * 0.006"},
              {f"{CL}-ex1-tests": "a drop halves the limit",
               f"{CL}-ex2-tests": "over 380 ms",
               f"{CL}-ex3-tests": "the clients' think time is missing from the loop"},
              hides=CL_HIDES),
        Wrong({f"{CL}-ex1-answer": (
                   ("self.rtt_min_s = min(self.rtt_min_s, rtt_s)",
                    "if self.rtt_min_s == math.inf:\n            self.rtt_min_s = rtt_s"),)},
              {f"{CL}-ex1-tests": "rtt_min_s kept the first call's time"},
              hides=(*CL_HIDES, "180")),
        Wrong({f"{CL}-ex1-answer": (("queue = self.limit * (1", "queue = inflight * (1"),)},
              {f"{CL}-ex1-tests": "the queue was estimated from the calls in flight"},
              hides=(*CL_HIDES, "180")),
        Wrong({f"{CL}-ex1-answer": (("queue < self.alpha", "queue <= self.alpha"),)},
              {f"{CL}-ex1-tests": "the limit grew on a queue equal to alpha"},
              hides=(*CL_HIDES, "180")),
        Wrong({f"{CL}-ex1-answer": (("queue > self.beta", "queue >= self.beta"),)},
              {f"{CL}-ex1-tests": "the limit shrank on a queue equal to beta"},
              hides=(*CL_HIDES, "180")),
    ],
    "performance/read-replicas": [
        Wrong({f"{(RR := 'read-replicas')}-ex1-answer": (
                   ("for replica in self._turn():", "for replica in self.replicas:"),)},
              {f"{RR}-ex1-tests": "every read went to the same replica"}),
        Wrong({f"{RR}-ex1-answer": (
                   ("if replica.position >= floor:", "if replica.position > floor:"),),
               f"{RR}-ex2-answer": 'REPLICAS = 6\nMODE = "any"',
               f"{RR}-ex3-answer": "import math\nP_STALE = 1 - math.exp(-0.1 / 0.05)\n"
                                   "MAX_READ_RATE = 0.75 * 4 * 100"},
              {f"{RR}-ex1-tests": "which is not behind Ann",
               f"{RR}-ex2-tests": "mode 'any' lets a read go to a replica",
               f"{RR}-ex3-tests": "the wrong tail"},
              hides=("0.1353", "0.13533")),
        Wrong({f"{RR}-ex1-answer": (("                self.seen[session] = replica.position\n",
                                     ""),),
               f"{RR}-ex2-answer": 'REPLICAS = 5\nMODE = "read_your_writes"',
               f"{RR}-ex3-answer": "import math\nP_STALE = math.exp(-0.05 / 0.1)\n"
                                   "MAX_READ_RATE = 0.75 * 4 * 100"},
              {f"{RR}-ex1-tests": "seen was not updated",
               f"{RR}-ex2-tests": "the replicas are too busy",
               f"{RR}-ex3-tests": "the exponent is inverted"},
              hides=("0.1353", "0.13533")),
        Wrong({f"{RR}-ex1-answer": (("        self.seen[session] = self.primary.position\n", ""),),
               f"{RR}-ex2-answer": 'REPLICAS = 7\nMODE = "read_your_writes"',
               f"{RR}-ex3-answer": "import math\nP_STALE = math.exp(-0.1 / 0.05)\n"
                                   "MAX_READ_RATE = 4 * 100"},
              {f"{RR}-ex1-tests": "record the primary's position in seen too",
               f"{RR}-ex2-tests": "REPLICAS is not the fewest",
               f"{RR}-ex3-tests": "no headroom"},
              hides=("0.1353", "0.13533")),
        Wrong({f"{RR}-ex2-answer": 'REPLICAS = 4\nMODE = "read_your_writes"',
               f"{RR}-ex3-answer": "import math\nP_STALE = math.exp(-0.1 / 0.05)\n"
                                   "MAX_READ_RATE = 0.75 * 5 * 100"},
              {f"{RR}-ex2-tests": "the queue grows without bound",
               f"{RR}-ex3-tests": "the primary counted as a fifth read server"},
              hides=("0.1353", "0.13533")),
    ],
    "performance/hedged-requests": [
        Wrong({f"{(HR := 'hedged-requests')}-ex1-answer": (
                   ("best = min(best, send_at + took)", "best = min(best, took)"),),
               f"{HR}-ex2-answer": "delay_s = 0.005",
               f"{HR}-ex3-answer": "extra_load = 1 - math.exp(-2)\n"
                                   "p_slower_than_50ms = math.exp(-8)"},
              {f"{HR}-ex1-tests": "counted from 0, not from when it was sent",
               f"{HR}-ex2-tests": "fires too early",
               f"{HR}-ex3-tests": "the share of requests the primary answers before the delay"},
              hides=("0.1353", "0.000335", "0.00033")),
        Wrong({f"{HR}-ex1-answer": (("if best <= send_at:", "if best < send_at:"),),
               f"{HR}-ex2-answer": "delay_s = 10.0",
               f"{HR}-ex3-answer": "extra_load = math.exp(-2)\n"
                                   "p_slower_than_50ms = math.exp(-10)"},
              {f"{HR}-ex1-tests": "compare with <=, not <",
               f"{HR}-ex2-tests": "units? delay_s is in seconds",
               f"{HR}-ex3-tests": "the backup as starting at time 0"},
              hides=("0.1353", "0.000335", "0.00033")),
        Wrong({f"{HR}-ex1-answer": (("for j, took in enumerate(times):",
                                     "for j, took in enumerate(times[:2]):"),),
               f"{HR}-ex2-answer": "delay_s = 0.05",
               f"{HR}-ex3-answer": "extra_load = 0.05\np_slower_than_50ms = math.exp(-8)"},
              {f"{HR}-ex1-tests": "only one backup was sent",
               f"{HR}-ex2-tests": "fires too late",
               f"{HR}-ex3-tests": "5 % holds only when the delay is the p95"},
              hides=("0.1353", "0.000335", "0.00033")),
        Wrong({f"{HR}-ex3-answer": "extra_load = math.exp(-2)\n"
                                   "p_slower_than_50ms = math.exp(-5)"},
              {f"{HR}-ex3-tests": "without the hedge"},
              hides=("0.000335", "0.00033")),
    ],
    "performance/load-balancing": [
        Wrong({f"{(LB := 'load-balancing')}-ex1-answer": (
                   ("chosen = other if loads[other] <= loads[fresh] else fresh",
                    "chosen = min(range(self.servers), key=loads.__getitem__)"),)},
              {f"{LB}-ex1-tests": "not to scan them all"}),
        Wrong({f"{LB}-ex1-answer": (
                   ("        self.remembered = chosen\n", ""),),
               f"{LB}-ex2-answer": "chosen_choices = 100",
               f"{LB}-ex3-answer": "tail_fraction = 0.8 ** 4"},
              {f"{LB}-ex1-tests": "nothing was remembered",
               f"{LB}-ex2-tests": "join-the-shortest-queue",
               f"{LB}-ex3-tests": "random assignment (d = 1)"},
              hides=("0.0351", "0.0352")),
        Wrong({f"{LB}-ex1-answer": (("        other = self.remembered\n",
                                     "        other = None\n"),),
               f"{LB}-ex2-answer": "chosen_choices = 1",
               f"{LB}-ex3-answer": "tail_fraction = 0.8 ** 2 ** 4"},
              {f"{LB}-ex1-tests": "compare the remembered server with one fresh",
               f"{LB}-ex2-tests": "d = 1 is random assignment",
               f"{LB}-ex3-tests": "not 2^i"},
              hides=("0.0351", "0.0352")),
        Wrong({f"{LB}-ex1-answer": (("loads[other] <= loads[fresh]",
                                     "loads[other] < loads[fresh]"),),
               f"{LB}-ex2-answer": "chosen_choices = 4",
               f"{LB}-ex3-answer": "tail_fraction = 0.8 ** (2 ** 3 - 1)"},
              {f"{LB}-ex1-tests": "on a tie keep self.remembered",
               f"{LB}-ex2-tests": "each extra candidate makes the choice more like a full scan",
               f"{LB}-ex3-tests": "off by one in i"},
              hides=("0.0351", "0.0352")),
    ],
    "performance/request-batching": [
        Wrong({f"{(RB := 'request-batching')}-ex1-answer": (
                   ("self.pending_bytes + len(item) > self.max_bytes:",
                    "self.pending_bytes + len(item) >= self.max_bytes:"),),
               f"{RB}-ex2-answer": "chosen_max_items = 16\nchosen_linger_s = 0.002",
               f"{RB}-ex3-answer": "import math\ncapacity_b32 = 32 / 0.002\n"
                                   "smallest_b = math.ceil(6000 * 0.002 / (1 - 6000 * 0.00005))\n"
                                   "mean_wait_s = (smallest_b - 1) / (2 * 6000)"},
              {f"{RB}-ex1-tests": "flush first only when it would go over (>)",
               f"{RB}-ex2-tests": "a linger too short for the load",
               f"{RB}-ex3-tests": "the per-row cost is missing"},
              hides=("8888.", "0.0014166")),
        Wrong({f"{RB}-ex1-answer": (
                   ("        if self.pending and self.pending_bytes + len(item) > self.max_bytes:"
                    "\n            self.flush(self._take(now, \"size\"))\n", ""),),
               f"{RB}-ex2-answer": "chosen_max_items = 16\nchosen_linger_s = 0.02",
               f"{RB}-ex3-answer": "import math\ncapacity_b32 = 32 / (0.002 + 32 * 0.00005)\n"
                                   "smallest_b = math.floor(6000 * 0.002 / (1 - 6000 * 0.00005))\n"
                                   "mean_wait_s = (smallest_b - 1) / (2 * 6000)"},
              {f"{RB}-ex1-tests": "the batch went over max_bytes",
               f"{RB}-ex2-tests": "every item waits out the linger",
               f"{RB}-ex3-tests": "rounded down"},
              hides=("8888.", "0.0014166")),
        Wrong({f"{RB}-ex1-answer": (("            self.first_at = now\n", "            pass\n"),),
               f"{RB}-ex3-answer": "import math\ncapacity_b32 = 32 / (0.002 + 32 * 0.00005)\n"
                                   "smallest_b = math.ceil(6000 * 0.002 / (1 - 6000 * 0.00005))\n"
                                   "mean_wait_s = (smallest_b - 1) / 6000"},
              {f"{RB}-ex1-tests": "set self.first_at = now",
               f"{RB}-ex3-tests": "how long the first row waits"},
              hides=("8888.", "0.0014166")),
        Wrong({f"{RB}-ex3-answer": "import math\ncapacity_b32 = 32 / (2 + 32 * 0.05)\n"
                                   "smallest_b = math.ceil(6000 * 0.002 / (1 - 6000 * 0.00005))\n"
                                   "mean_wait_s = (smallest_b - 1) / (2 * 6000)"},
              {f"{RB}-ex3-tests": "units: that is rows per millisecond"},
              hides=("8888.", "0.0014166")),
        Wrong({f"{RB}-ex1-answer": (('self._take(now, "size")', 'self._take(now, "linger")'),),
               f"{RB}-ex3-answer": "import math\ncapacity_b32 = 32 / (0.002 + 32 * 0.00005)\n"
                                   "smallest_b = math.ceil(6000 * 0.002)\n"
                                   "mean_wait_s = (smallest_b - 1) / (2 * 6000)"},
              {f"{RB}-ex1-tests": "is a size flush",
               f"{RB}-ex3-tests": "the rows of a batch add to the time of its commit"},
              hides=("8888.", "0.0014166", "18")),
    ],
    "performance/chunking": [
        Wrong({f"{(CHK := 'chunking')}-ex1-answer": (
                   ("if ranges and ranges[-1][0] + ranges[-1][1] == start:", "if False:"),),
               f"{CHK}-ex2-answer": "part_bytes = 5 * MiB",
               f"{CHK}-ex3-answer": "import math\nchunk_bytes_star = math.sqrt(0.030 / 2e-10)\n"
                                    "failed_share = 0.5"},
              {f"{CHK}-ex1-tests": "neighbouring missing chunks must be joined",
               f"{CHK}-ex2-tests": "too small: every part pays the 80 ms overhead",
               f"{CHK}-ex3-tests": "h went in as 0.03 seconds"},
              hides=("7.74", "77459", "0.0153", "0.0154")),
        Wrong({f"{CHK}-ex1-answer": (("end = min(start + chunk_size, size)",
                                      "end = start + chunk_size"),),
               f"{CHK}-ex2-answer": "part_bytes = 28284271  # the square-root rule's size",
               f"{CHK}-ex3-answer": "chunk_bytes_star = 0.030 * 40e6 / 2e-10\n"
                                    "failed_share = 0.5"},
              {f"{CHK}-ex1-tests": "runs past the end of the payload",
               f"{CHK}-ex2-tests": "the tail favours smaller parts",
               f"{CHK}-ex3-tests": "the square root is missing"},
              hides=("7.74", "77459", "0.0153", "0.0154")),
        Wrong({f"{CHK}-ex2-answer": "part_bytes = 4 * MiB",
               f"{CHK}-ex3-answer": "import math\n"
                                    "chunk_bytes_star = math.sqrt(0.030 * 40e6 / 2e-10)\n"
                                    "failed_share = (1 - 2e-10) ** chunk_bytes_star"},
              {f"{CHK}-ex2-tests": "S3 does not accept",
               f"{CHK}-ex3-tests": "the share of attempts that succeed"},
              hides=("7.74", "77459", "0.0153", "0.0154")),
        Wrong({f"{CHK}-ex3-answer": "import math\n"
                                    "chunk_bytes_star = math.sqrt(0.030 * 40e6 / 2e-10)\n"
                                    "failed_share = 2 * math.sqrt(0.030 * 40e6 * 2e-10)"},
              {f"{CHK}-ex3-tests": "adds the overhead share to the resend share"},
              hides=("7.74", "77459", "0.0153", "0.0154")),
    ],
    "caching/ttl-expiry": [
        Wrong({f"{(TTL := 'ttl-expiry')}-ex1-answer": (
                   ("self._entries[key] = (value, now + self.ttl_s)",
                    "self._entries[key] = (value, expires_at + self.ttl_s)"),),
               f"{TTL}-ex2-answer": "import math\nttl_s = -math.log(1 - 0.02) / 0.002",
               f"{TTL}-ex3-answer": "page_hit_ratio = 1 / (1 + 0.2 * 60)\n"
                                    "stale_share = 1 - (1 - 2.718281828459045 ** -0.1) / 0.1"},
              {f"{TTL}-ex1-tests": "it must move to now + ttl_s",
               f"{TTL}-ex2-tests": "not the largest",
               f"{TTL}-ex3-tests": "that is the share of reads that miss"},
              hides=("0.923", "0.0483")),
        Wrong({f"{TTL}-ex1-answer": (("if now >= expires_at:", "if now > expires_at:"),),
               f"{TTL}-ex2-answer": "ttl_s = 120.0",
               f"{TTL}-ex3-answer": "page_hit_ratio = 0.2 * 60 / (1 + 0.2 * 60)\n"
                                    "stale_share = 1 - 2.718281828459045 ** -0.1"},
              {f"{TTL}-ex1-tests": "compare with now >= expires_at, not >",
               f"{TTL}-ex2-tests": "over the 2 % budget: the TTL is too long",
               f"{TTL}-ex3-tests": "the chance that an entry is stale at the end of its life"},
              hides=("0.0483",)),
        Wrong({f"{TTL}-ex1-answer": (("            del self._entries[key]\n", ""),),
               f"{TTL}-ex3-answer": "page_hit_ratio = 0.2 * 1 / (1 + 0.2 * 1)\n"
                                    "stale_share = 60 / 600 / 2"},
              {f"{TTL}-ex1-tests": "the expired entry was left in self._entries",
               f"{TTL}-ex3-tests": "units: the TTL went in as 1 (minute)"},
              hides=("0.923", "0.0483")),
        Wrong({f"{TTL}-ex3-answer": "page_hit_ratio = 0.2 * 60 / (1 + 0.2 * 60)\n"
                                    "stale_share = page_hit_ratio * "
                                    "(1 - (1 - 2.718281828459045 ** -0.1) / 0.1)"},
              {f"{TTL}-ex3-tests": "the stale share of all reads, misses included"},
              hides=("0.923", "0.0483")),
    ],
    "caching/write-through-write-behind": [
        Wrong({(WTWB := "write-through-write-behind") + "-ex1-answer": (
                   ("del self.pending[: len(batch)]", "self.pending.clear()"),),
               f"{WTWB}-ex2-answer": "chosen_flush_s = 5.0",
               f"{WTWB}-ex3-answer": "unflushed_writes = 400 * 2\n"
                                     "tuned_dirty_pages = 2000 * 10"},
              {f"{WTWB}-ex1-tests": "pending was cleared entirely",
               f"{WTWB}-ex2-tests": "the interval is too long",
               f"{WTWB}-ex3-tests": "each write waited a whole flush interval"},
              hides=("440", "22000", "2.47")),
        Wrong({f"{WTWB}-ex1-answer": (("batch = self.pending[: self.max_batch]",
                                       "batch = list(dict(self.pending).items())"
                                       "[: self.max_batch]"),),
               f"{WTWB}-ex2-answer": "chosen_flush_s = 1.25",
               f"{WTWB}-ex3-answer": "unflushed_writes = 400 * (2 / 2 + 0.1)\n"
                                     "tuned_dirty_pages = 2000 * 10"},
              {f"{WTWB}-ex1-tests": "the batch was coalesced",
               f"{WTWB}-ex2-tests": "the budget allows a longer F",
               f"{WTWB}-ex3-tests": "the wait for the flusher's next wake-up is missing"},
              hides=("440", "22000", "2.47")),
        Wrong({f"{WTWB}-ex1-answer": (("batch = self.pending[: self.max_batch]",
                                       "batch = self.pending[::-1][: self.max_batch]"),),
               f"{WTWB}-ex3-answer": "unflushed_writes = 400 * 1.0\n"
                                     "tuned_dirty_pages = 2000 * (10 + 2 / 2)"},
              {f"{WTWB}-ex1-tests": "newest first",
               f"{WTWB}-ex3-tests": "the flush's own duration is missing"},
              hides=("440", "22000")),
        Wrong({f"{WTWB}-ex2-answer": "chosen_flush_s = 2.0",
               f"{WTWB}-ex3-answer": "unflushed_writes = 400 * (2 / 2 + 0.1)\n"
                                     "tuned_dirty_pages = 2000 * (1000 + 200 / 2)"},
              {f"{WTWB}-ex2-tests": "the budget allows a longer F",
               f"{WTWB}-ex3-tests": "units: the sysctls are in centiseconds"},
              hides=("440", "22000", "2.47")),
        Wrong({f"{WTWB}-ex2-answer": "chosen_flush_s = 2.6",
               f"{WTWB}-ex3-answer": "unflushed_writes = 400 * (2 / 2 + 0.1)\n"
                                     "tuned_dirty_pages = 2000 * (10 + 2)"},
              {f"{WTWB}-ex2-tests": "the interval is too long",
               f"{WTWB}-ex3-tests": "the worst case"},
              hides=("440", "22000", "2.47")),
    ],
    "caching/cache-stampede-protection": [
        Wrong({"cache-stampede-protection-ex1-answer": (
                   ("        if key in self.waiting:\n"
                    "            self.waiting[key].append(callback)\n            return\n", ""),),
               "cache-stampede-protection-ex2-answer": "beta = 0.5",
               "cache-stampede-protection-ex3-answer": "import math\nduplicates = 500 * 80\n"
                                                       "with_per_process_locks = 1.0"},
              {"cache-stampede-protection-ex1-tests": "every caller started its own computation",
               "cache-stampede-protection-ex2-tests": "β is too small",
               "cache-stampede-protection-ex3-tests": "units: 80 ms is 0.08 s"},
              hides=("23.1", "40.0")),
        Wrong({"cache-stampede-protection-ex1-answer": (
                   ("        self.waiting[key] = [callback]\n        self.fetches += 1\n"
                    "        self.fetch(key, lambda value: self._deliver(key, value))",
                    "        self.fetches += 1\n"
                    "        self.fetch(key, lambda value: self._deliver(key, value))\n"
                    "        self.waiting.setdefault(key, []).append(callback)"),),
               "cache-stampede-protection-ex2-answer": "beta = 3.0",
               "cache-stampede-protection-ex3-answer": "import math\nduplicates = 500 / 0.08\n"
                                                       "with_per_process_locks = 41.0"},
              {"cache-stampede-protection-ex1-tests": "put [callback] in self.waiting before",
               "cache-stampede-protection-ex2-tests": "β is too large",
               "cache-stampede-protection-ex3-tests": "an inverted ratio"},
              hides=("23.1", "40.0")),
        Wrong({"cache-stampede-protection-ex3-answer": "import math\nduplicates = 41\n"
                                                       "with_per_process_locks = 32.0"},
              {"cache-stampede-protection-ex3-tests": "counts the first recomputation too"},
              hides=("23.1",)),
        Wrong({"cache-stampede-protection-ex3-answer": "import math\nduplicates = 500 * 0.08\n"
                                                       "with_per_process_locks = 32.0"},
              {"cache-stampede-protection-ex3-tests": "assumes every server gets a read"},
              hides=("23.1",)),
        Wrong({"cache-stampede-protection-ex3-answer": "import math\nduplicates = 500 * 0.08\n"
                                                       "with_per_process_locks = 500 * 0.08 / 32"},
              {"cache-stampede-protection-ex3-tests": "how many reads each server gets"},
              hides=("23.1",)),
        Wrong({"cache-stampede-protection-ex3-answer": "import math\nduplicates = 500 * 0.08\n"
                                                       "with_per_process_locks = 41.0"},
              {"cache-stampede-protection-ex3-tests": "the herd with no lock at all"},
              hides=("23.1",)),
    ],
    "caching/eviction-policies": [
        Wrong({(EP := "eviction-policies") + "-ex1-answer": (
                   ("            self.ring[key] = False\n            self.ring.move_to_end(key)",
                    "            return key"),),
               f"{EP}-ex2-answer": "capacity = 200",
               f"{EP}-ex3-answer": (("perfect_lfu_hit_ratio = 0.40 + 0.25",
                                     "perfect_lfu_hit_ratio = 1 - (0.40 + 0.25)"),)},
              {f"{EP}-ex1-tests": "behaves exactly like FIFO",
               f"{EP}-ex2-tests": "Sized from LRU's curve or from the top-C share",
               f"{EP}-ex3-tests": "that is the miss ratio"},
              hides=("0.65", "0.632", "260")),
        Wrong({f"{EP}-ex1-answer": (("        self.ring[key] = True\n",
                                     "        self.ring[key] = False\n"
                                     "        self.ring.move_to_end(key)\n"),),
               f"{EP}-ex2-answer": "capacity = 1000",
               f"{EP}-ex3-answer": (("lru_hit_probability = 1 - math.exp(-0.40 * 2.5)",
                                     "lru_hit_probability = math.exp(-0.40 * 2.5)"),)},
              {f"{EP}-ex1-tests": "behaves exactly like LRU",
               f"{EP}-ex2-tests": "not the smallest",
               f"{EP}-ex3-tests": "had no request in the last T_C"},
              hides=("0.65", "0.632", "260")),
        Wrong({f"{EP}-ex1-answer": (("self.ring[key] = False\n\n    def _used",
                                     "self.ring[key] = True\n\n    def _used"),),
               f"{EP}-ex2-answer": "capacity = 80",
               f"{EP}-ex3-answer": (("fifo_hit_probability = 0.40 * 2.5 / (1 + 0.40 * 2.5)",
                                     "fifo_hit_probability = 1 - math.exp(-0.40 * 2.5)"),)},
              {f"{EP}-ex1-tests": "hits on the trace a a b c d a",
               f"{EP}-ex2-tests": "too small",
               f"{EP}-ex3-tests": "that is LRU's hit probability"},
              hides=("0.65", "260")),
    ],
    "caching/cache-aside": [
        Wrong({(CA := "cache-aside") + "-ex1-answer": (
                   ("        self.save_many(items)\n        for key in items:\n"
                    "            self.invalidate(key)",
                    "        for key in items:\n            self.invalidate(key)\n"
                    "        self.save_many(items)"),),
               f"{CA}-ex2-answer": "chosen_capacity = 500",
               f"{CA}-ex3-answer": "db_qps = 0.96 * 24_000\n"
                                   "mean_latency_ms = 0.96 * 0.4 + 0.04 * 12\n"
                                   "hit_ratio_needed = 1 - 600 / 24_000"},
              {f"{CA}-ex1-tests": "invalidated before the database held its new value",
               f"{CA}-ex2-tests": "the cache is too small",
               f"{CA}-ex3-tests": "that is the hits, the reads the cache answers"},
              hides=("960", "0.864", "0.975", "900")),
        Wrong({f"{CA}-ex1-answer": (("            self.invalidate(key)",
                                     "            self.cache.put(key, (items[key], "
                                     "float('inf')))"),),
               f"{CA}-ex2-answer": "chosen_capacity = 1500",
               f"{CA}-ex3-answer": "db_qps = 0.04 * 24_000\n"
                                   "mean_latency_ms = 0.04 * 0.4 + 0.96 * 12\n"
                                   "hit_ratio_needed = 1 - 600 / 24_000"},
              {f"{CA}-ex1-tests": "a write must delete the entry, not update it",
               f"{CA}-ex2-tests": "but so do 1400: not the smallest",
               f"{CA}-ex3-tests": "the two weights are swapped"},
              hides=("960", "0.864", "0.975", "900")),
        Wrong({f"{CA}-ex1-answer": (("self.invalidate(key)", "self.cache.delete(key)"),),
               f"{CA}-ex2-answer": "import numpy as np\nchosen_capacity = np.int64(900)",
               f"{CA}-ex3-answer": "db_qps = 0.04 * 24_000\n"
                                   "mean_latency_ms = 0.96 * 0.4 + 0.04 * 12\n"
                                   "hit_ratio_needed = 600 / 24_000"},
              {f"{CA}-ex1-tests": "lease survived set_many",
               f"{CA}-ex3-tests": "the miss ratio the target allows"},
              hides=("960", "0.864", "0.975")),
        Wrong({f"{CA}-ex1-answer": (("        self.save_many(items)\n        for key in items:\n"
                                     "            self.invalidate(key)",
                                     "        for key, value in items.items():\n"
                                     "            self.save_many({key: value})\n"
                                     "            self.invalidate(key)"),),
               f"{CA}-ex2-answer": "chosen_capacity = 800",
               f"{CA}-ex3-answer": "db_qps = 0.04 * 24_000\n"
                                   "mean_latency_ms = 0.96 * 0.4\n"
                                   "hit_ratio_needed = 1 - 600 / 24_000"},
              {f"{CA}-ex1-tests": "one transaction per key",
               f"{CA}-ex2-tests": "with seed 2 p99 is",
               f"{CA}-ex3-tests": "only the hits counted"},
              hides=("960", "0.864", "0.975", "900")),
        Wrong({f"{CA}-ex1-answer": (("        self.save_many(items)\n        for key in items:\n"
                                     "            self.invalidate(key)",
                                     "        for key, value in items.items():\n"
                                     "            self.set(key, value)"),),
               f"{CA}-ex2-answer": "chosen_capacity = 900.0",
               f"{CA}-ex3-answer": "db_qps = 0.04\n"
                                   "mean_latency_ms = 0.96 * 0.4 + 0.04 * 12\n"
                                   "hit_ratio_needed = 1 - 600 / 24_000"},
              {f"{CA}-ex1-tests": "written row by row or not at all",
               f"{CA}-ex2-tests": "a multiple of 100",
               f"{CA}-ex3-tests": "a share of the reads, not reads per second"},
              hides=("960", "0.864", "0.975")),
    ],
    "caching/multi-tier-cache-cdn": [
        Wrong({(MT := "multi-tier-cache-cdn") + "-ex1-answer": (
                   ("        if level == len(self.tiers):\n            self.tiers[-1].put(key, "
                    "value)\n        elif level > 0:\n            self.tiers[level - 1].put(key, "
                    "value)",
                    "        for tier in self.tiers[:level]:\n            tier.put(key, value)"),),
               f"{MT}-ex2-answer": "edge_capacity = 500",
               f"{MT}-ex3-answer": "origin_rps = 20_000 * (1 - 0.7) * 0.6\n"
                                   "shield_hit_needed = 1 - 1_000 / 20_000"},
              {f"{MT}-ex1-tests": "that is the inclusive fill of the lesson",
               f"{MT}-ex2-tests": "the edges are too small",
               f"{MT}-ex3-tests": "the shield's hit ratio used where its miss ratio belongs"},
              hides=("2400", "0.833")),
        Wrong({f"{MT}-ex1-answer": (("self.tiers[-1].put(key, value)",
                                     "self.tiers[0].put(key, value)"),),
               f"{MT}-ex2-answer": "edge_capacity = 2_000",
               f"{MT}-ex3-answer": "origin_rps = 20_000 * (1 - 0.7)\n"
                                   "shield_hit_needed = 1_000 / (20_000 * (1 - 0.7))"},
              {f"{MT}-ex1-tests": "the origin's answer went into the first tier",
               f"{MT}-ex2-tests": "over the 10,000-entry budget",
               f"{MT}-ex3-tests": "that is what reaches the shield"},
              hides=("2400", "0.833")),
        Wrong({f"{MT}-ex1-answer": (("self.tiers[level - 1].put(key, value)",
                                     "self.tiers[level].put(key, value)"),),
               f"{MT}-ex2-answer": "import numpy as np\nedge_capacity = np.int64(1_250)",
               f"{MT}-ex3-answer": "origin_rps = 20_000 * (1 - 0.7 - 0.6)\n"
                                   "shield_hit_needed = 0.95"},
              {f"{MT}-ex1-tests": "must copy the object one tier up",
               f"{MT}-ex2-tests": "not the smallest within 10 %",
               f"{MT}-ex3-tests": "the miss ratios were added"},
              hides=("2400", "0.833")),
        Wrong({f"{MT}-ex3-answer": "origin_rps = 20_000 * (1 - 0.7) * (1 - 0.6)\n"
                                   "shield_hit_needed = 1_000 / (20_000 * (1 - 0.7))"},
              {f"{MT}-ex3-tests": "that is the miss ratio the shield may have"},
              hides=("0.833",)),
        Wrong({f"{MT}-ex3-answer": "origin_rps = 20_000 * (1 - 0.7) * (1 - 0.6)\n"
                                   "shield_hit_needed = 1 - 1_000 / 20_000"},
              {f"{MT}-ex3-tests": "the edges were forgotten"},
              hides=("0.833",)),
    ],
    "resilience/circuit-breaker": [
        Wrong({f"{CB}-ex1-answer": (("min(2 * self.sleep_window_s, self.max_sleep_s)",
                                     "2 * self.sleep_window_s"),),
               f"{CB}-ex2-answer": "chosen = BreakerConfig()",
               f"{CB}-ex3-answer": "tied_up = 120 / 0.5\nlargest_safe_timeout_s = 120 / 40",
               f"{CB}-ex4-answer": "import math\np_false_trip = sum(math.comb(20, k) * 0.2**k "
                                   "* 0.8 ** (20 - k) for k in range(11, 21))"},
              {f"{CB}-ex1-tests": "grew past max_sleep_s",
               f"{CB}-ex2-tests": "opens too late",
               f"{CB}-ex3-tests": "tied_up is 240: an inverted ratio",
               f"{CB}-ex4-tests": "strict vs non-strict inequality"},
              hides=("60", "0.333", "0.00259")),
        Wrong({f"{CB}-ex1-answer": (("min(2 * self.sleep_window_s, self.max_sleep_s)",
                                     "self.sleep_window_s"),),
               f"{CB}-ex2-answer": "chosen = BreakerConfig(failure_rate_threshold=0.15, "
                                   "window_s=2.0, minimum_calls=20, sleep_window_s=5.0)",
               f"{CB}-ex3-answer": "tied_up = 120 * 0.5\nlargest_safe_timeout_s = 1000 * 40 / 120",
               f"{CB}-ex4-answer": "import math\np_false_trip = math.comb(20, 10) * 0.2**10 "
                                   "* 0.8**10"},
              {f"{CB}-ex1-tests": "the window did not grow",
               f"{CB}-ex2-tests": "too close to the 15 % baseline error rate",
               f"{CB}-ex3-tests": "units: that is in milliseconds",
               f"{CB}-ex4-tests": "that is P(exactly 10 fail)"},
              hides=("0.333", "0.00259")),
        Wrong({f"{CB}-ex1-answer": (("if self.trial_successes >= self.half_open_calls:",
                                     "if self.trial_successes >= 1:"),),
               f"{CB}-ex3-answer": "tied_up = 40\nlargest_safe_timeout_s = 40 / 120",
               f"{CB}-ex4-answer": "p_false_trip = 0.2**10"},
              {f"{CB}-ex1-tests": "closed after the first success, but half_open_calls is 2",
               f"{CB}-ex3-tests": "that is the pool size",
               f"{CB}-ex4-tests": "0.2¹⁰ is one ordering of 10 failures"},
              hides=("60", "0.00259")),
    ],
    "foundations/queueing-basics": [
        Wrong({"erlang-c-answer": (("range(servers)", "range(servers + 1)"),),
               "servers-for-p99-answer": (('latency_percentiles(drop_warmup(table, count=2_000)'
                                           '.latency, [99])["latency_p99_s"]',
                                           "float(np.mean(drop_warmup(table, count=2_000)"
                                           ".latency))"),),
               "fanout-answer": (("1 - (1 - 0.02) ** 50", "0.02 * 50"),),
               "fast-or-pooled-answer": (("better_at_high_load = min(layouts, key=lambda "
                                          "layout: mean_response_s(0.9, layout))",
                                          'better_at_high_load = "two slow"'),)},
              {"erlang-c-tests": "the sum runs to k = c",
               "servers-for-p99-tests": "that is the mean response time, not the 99th",
               "fanout-tests": "p_page_slow is 1: the wrong formula: adding the 50",
               "fast-or-pooled-tests": "both layouts pool"},
              hides=("0.636", "0.00210", "1.05")),
        Wrong({"erlang-c-answer": ((" + 1 / service_rate", ""),),
               "servers-for-p99-answer": (("servers_needed = smallest_servers(ARRIVAL_RATE, "
                                           "P99_BOUND_S)", "servers_needed = smallest_servers("
                                           "ARRIVAL_RATE, P99_BOUND_S) - 1"),),
               "fanout-answer": (("q_needed = 1 - 0.9 ** (1 / 50)", "q_needed = 0.1 / 50"),),
               "fast-or-pooled-answer": (('ratio_at_high_load = mean_response_s(0.9, "two slow")'
                                          ' / mean_response_s(0.9, "one fast")',
                                          'ratio_at_high_load = mean_response_s(0.9, "one fast")'
                                          ' / mean_response_s(0.9, "two slow")'),)},
              {"erlang-c-tests": "the mean wait in the queue alone: add one service time",
               "servers-for-p99-tests": "one server too few",
               "fanout-tests": "q_needed is 0.002: the linear approximation",
               "fast-or-pooled-tests": "an inverted ratio"},
              hides=("0.636", "0.00210", "1.05")),
        Wrong({"erlang-c-answer": ((" / (1 - load)", ""),),
               "fanout-answer": (("p_page_slow = 1 - (1 - 0.02) ** 50",
                                  "p_page_slow = (1 - 0.02) ** 50"),),
               "fast-or-pooled-answer": (("better_at_low_load = min(layouts, key=lambda "
                                          "layout: mean_response_s(0.1, layout))",
                                          'better_at_low_load = "two slow"'),)},
              {"erlang-c-tests": "the factor 1/(1 − ρ) is missing",
               "fanout-tests": "the complement",
               "fast-or-pooled-tests": "at low load nobody waits"},
              hides=("0.636", "0.00210", "1.05")),
    ],
    "foundations/distributed-system-model": [
        Wrong({f"{DSM}-ex1-answer": (("for peer in ctx.peers:\n                self.pending[peer]"
                                      ".add(request.value)",
                                      "ctx.broadcast((\"gossip\", frozenset([request.value])))"),),
               f"{DSM}-ex2-answer": (('registers = ctx.disk.setdefault("registers", {})',
                                      'registers = self.__dict__.setdefault("registers", {})'),),
               f"{DSM}-ex3-answer": "messages_per_op = (1 - 0.75) * (4 - 1)"},
              {f"{DSM}-ex1-tests": "seed 1: lost adds",
               f"{DSM}-ex2-tests": "from state a restart wiped",
               f"{DSM}-ex3-tests": "only the copies are counted"},
              hides=("0.9375", "0.938")),
        Wrong({f"{DSM}-ex1-answer": (("ctx.reply(request)\n",
                                      "ctx.broadcast((\"gossip\", frozenset([request.value])))\n"
                                      "            ctx.reply(request)\n"),
                                     ('ctx.disk.setdefault("seen", set()).update(values)',
                                      'new = values - ctx.disk.setdefault("seen", set())\n'
                                      "            if new:\n                ctx.broadcast("
                                      "(\"gossip\", frozenset(new)))\n"
                                      '            ctx.disk["seen"].update(values)')),
               f"{DSM}-ex2-answer": (("if owner == ctx.node_id:",
                                      'if owner == ctx.node_id or request.f == "read":'),),
               f"{DSM}-ex3-answer": "messages_per_op = (4 - 1) / 4 + (4 - 1)"},
              {f"{DSM}-ex1-tests": "floods the network",
               f"{DSM}-ex2-tests": "answered by a node that does not own the key",
               f"{DSM}-ex3-tests": "the reads are counted too"},
              hides=("0.9375", "0.938")),
        Wrong({f"{DSM}-ex1-answer": (("period_s = 0.2", "period_s = 2.0"),),
               f"{DSM}-ex2-answer": (("elif current == request.value[0]:",
                                      "elif current == current:"),),
               f"{DSM}-ex3-answer": "messages_per_op = (1 - 0.75) * (1 + (4 - 1))"},
              {f"{DSM}-ex1-tests": "the nodes gossip too seldom",
               f"{DSM}-ex2-tests": "seed 3: not linearizable",
               f"{DSM}-ex3-tests": "one in N already reaches the leader"},
              hides=("0.9375", "0.938")),
    ],
    "resilience/backpressure": [
        Wrong({"backpressure-ex1-answer": (("if self.credit > self.low:",
                                            "if self.credit >= self.low:"),),
               "backpressure-ex2-answer": "capacity = 1",
               "backpressure-ex3-answer": (("(1 - rho**5)", "(1 - rho**4)"),)},
              {"backpressure-ex1-tests": "strict vs non-strict inequality",
               "backpressure-ex2-tests": "the buffer is too small",
               "backpressure-ex3-tests": "the denominator is 1 − ρ^(K+1), not 1 − ρ^K"},
              hides=("0.1602", "0.2369")),
        Wrong({"backpressure-ex1-answer": (("granted = self.high - self.credit",
                                            "granted = self.high"),),
               "backpressure-ex2-answer": "capacity = 40",
               "backpressure-ex3-answer": (("/ (9 * (1 - p_block))", "/ 9"),)},
              {"backpressure-ex1-tests": "grant high − credit, not high",
               "backpressure-ex2-tests": "try a smaller K",
               "backpressure-ex3-tests": "divide by the admitted rate λ(1 − P_block)"},
              hides=("0.1602", "0.2369")),
    ],
    "resilience/bulkhead": [
        Wrong({"bulkhead-ex1-answer": (("if self.in_use >= limit:", "if self.in_use > limit:"),),
               "bulkhead-ex2-answer": "chosen = Scenario()",
               "bulkhead-ex3-answer": "partitioned_s = 8 / (10 - 8)\npooled_s = 1 / (20 - 16)\n"
                                      "refused_share = 0.8"},
              {"bulkhead-ex1-tests": "strict vs non-strict inequality",
               "bulkhead-ex2-tests": "the flood still reaches it",
               "bulkhead-ex3-tests": "partitioned_s is 4: that is L"},
              hides=("0.500", "0.278", "0.444")),
        Wrong({"bulkhead-ex1-answer": (("self.rejected += 1\n", ""),),
               "bulkhead-ex2-answer": 'chosen = replace(Scenario(), isolation="partitioned", '
                                      "noisy_workers=5, queue_limit=None)",
               "bulkhead-ex3-answer": (("pooled_s = 0.1 / (1 - 0.8**2)", "pooled_s = 0.25"),)},
              {"bulkhead-ex1-tests": "a refused call must add one to self.rejected",
               "bulkhead-ex2-tests": "a short queue_limit turns that wait into fast refusals",
               "bulkhead-ex3-tests": "pooled_s is 0.25: the wrong formula"},
              hides=("0.278", "0.444")),
        Wrong({"bulkhead-ex1-answer": (("limit = self.max_concurrent if critical else "
                                        "self.max_concurrent - self.reserve",
                                        "limit = self.max_concurrent - self.reserve"),),
               "bulkhead-ex2-answer": 'chosen = replace(Scenario(), isolation="partitioned", '
                                      "noisy_workers=5, queue_limit=0)",
               "bulkhead-ex3-answer": (("refused_share = 0.8 / 1.8", "refused_share = 1 / 1.8"),)},
              {"bulkhead-ex1-tests": "critical calls may use the reserve",
               "bulkhead-ex2-tests": "refuses normal bursts (Erlang B)",
               "bulkhead-ex3-tests": "the complement: that is the share admitted"},
              hides=("0.500", "0.278", "0.444")),
    ],
    "resilience/failover": [
        Wrong({"failover-ex1-answer": ((", reverse=True)", ")"),),
               "failover-ex2-answer": "heartbeat_s = 1.0\ndetect_timeout_s = 4.0\n"
                                      "promotion_s = 10.0",
               "failover-ex3-answer": (("independent = 1 - (1 - 0.99) ** 3",
                                        "independent = 0.99**3"),)},
              {"failover-ex1-tests": "least caught-up first",
               "failover-ex2-tests": "below 0.995",
               "failover-ex3-tests": "the probability that all three are up"},
              hides=("0.999999", "0.998999")),
        Wrong({"failover-ex1-answer": (("alive = [name for name, d in self.detectors.items() "
                                        "if not d.suspected()]", "alive = list(self.detectors)"),),
               "failover-ex2-answer": "heartbeat_s = 0.5\ndetect_timeout_s = 1.0\n"
                                      "promotion_s = 3.0",
               "failover-ex3-answer": (("with_zone = 0.999 * independent",
                                        "with_zone = 0.999 * 0.99**3"),)},
              {"failover-ex1-tests": "a suspected replica is not healthy",
               "failover-ex2-tests": "healthy pauses would trigger needless failovers",
               "failover-ex3-tests": "that needs all three replicas up"},
              hides=("0.999999", "0.998999")),
        Wrong({"failover-ex1-answer": ((", reverse=True)", ")[::-1]"),),
               "failover-ex3-answer": (('best_choice = "spread over three zones"',
                                        'best_choice = "add a fourth replica"'),)},
              {"failover-ex1-tests": "on a tie keep the order the replicas were named",
               "failover-ex3-tests": "cannot lift the zone's cap"},
              hides=("0.999999", "0.998999", "spread over")),
    ],
    "resilience/failure-detection": [
        Wrong({f"{FD}-ex1-answer": (("return silence / (mean * math.log(10))",
                                     "return silence / mean"),),
               f"{FD}-ex2-answer": "period_s = 0.2\ntimeout_s = 1.4",
               f"{FD}-ex3-answer": (("worst_detection_s = 1.0 + 0.5", "worst_detection_s = 0.5"),)},
              {f"{FD}-ex1-tests": "the natural log",
               f"{FD}-ex2-tests": "more than 4 heartbeats per second",
               f"{FD}-ex3-tests": "that is the timeout alone"},
              hides=("71.9",)),
        Wrong({f"{FD}-ex1-answer": (("return silence / (mean * math.log(10))",
                                     "return -silence / (mean * math.log(10))"),),
               f"{FD}-ex2-answer": "period_s = 0.5\ntimeout_s = 0.3",
               f"{FD}-ex3-answer": (("false_per_hour = 3600 / 1.0 * 0.02 * (1 - 0.001)",
                                     "false_per_hour = 3600 / 1.0 * 0.02"),)},
              {f"{FD}-ex1-tests": "the sign",
               f"{FD}-ex2-tests": "the timeout is too short for this network",
               f"{FD}-ex3-tests": "the previous heartbeat must have arrived"},
              hides=("71.9",)),
        Wrong({f"{FD}-ex1-answer": (("return silence / (mean * math.log(10))",
                                     "std = self.stats()[1]\n        return -math.log10(0.5 * "
                                     "math.erfc((silence - mean) / (std * math.sqrt(2))))"),),
               f"{FD}-ex3-answer": (("false_per_hour = 3600 / 1.0 * 0.02 * (1 - 0.001)",
                                     "false_per_hour = 3600 * 0.02 * 0.001"),)},
              {f"{FD}-ex1-tests": "that is the lesson's normal φ",
               f"{FD}-ex3-tests": "the wrong factor"},
              hides=("71.9",)),
    ],
    "resilience/load-shedding": [
        Wrong({"load-shedding-ex1-answer": (("ahead * self.service_s / self.workers",
                                             "ahead * self.service_s"),),
               "load-shedding-ex2-answer": 'max_wait_s = (0.5, 0.1)\ndiscipline = "fifo"',
               "load-shedding-ex3-answer": (("critical_mean_ms = 1000 / (50 - 20)",
                                             "critical_mean_ms = 1 / (50 - 20)"),)},
              {"load-shedding-ex1-tests": "one worker's rate",
               "load-shedding-ex2-tests": "in a FIFO queue a critical request waits behind",
               "load-shedding-ex3-tests": "critical_mean_ms is 0.0333333: units"},
              hides=("33.3", "153.5")),
        Wrong({"load-shedding-ex1-answer": (("ahead = self.in_flight - self.workers + 1",
                                             "ahead = self.in_flight - self.workers"),),
               "load-shedding-ex2-answer": 'max_wait_s = (0.1, 0.5)\ndiscipline = "priority"',
               "load-shedding-ex3-answer": (("critical_p99_ms = 1000 * math.log(100) / (50 - 20)",
                                             "critical_p99_ms = 1000 * math.log(100) / 50"),)},
              {"load-shedding-ex1-tests": "an off-by-one",
               "load-shedding-ex2-tests": "the critical limit must stay well above",
               "load-shedding-ex3-tests": "the rate is μ − λ₁, not μ"},
              hides=("33.3", "153.5")),
        Wrong({"load-shedding-ex3-answer": (("critical_mean_ms = 1000 / (50 - 20)",
                                             "critical_mean_ms = 1000 / (50 - 45)"),)},
              {"load-shedding-ex3-tests": "that is the FIFO answer"},
              hides=("33.3", "153.5")),
    ],
    "resilience/retry-backoff-jitter": [
        Wrong({"retry-backoff-jitter-ex1-answer": (("return self.tokens > self.max_tokens / 2",
                                                    "return self.tokens >= self.max_tokens / 2"),),
               "retry-backoff-jitter-ex2-answer": "max_attempts = 1\nbudget_ratio = 0.3",
               "retry-backoff-jitter-ex3-answer": "expected = 1 + 0.2 + 0.2**2 + 0.2**3\n"
                                                  "bottom_calls = 3**2\nhighest_load = 1 / 1.1"},
              {"retry-backoff-jitter-ex1-tests": "strict vs non-strict inequality",
               "retry-backoff-jitter-ex2-tests": "succeed on the quiet day",
               "retry-backoff-jitter-ex3-tests": "an off-by-one exponent"},
              hides=("0.909",)),
        Wrong({"retry-backoff-jitter-ex1-answer": (("min(self.max_tokens, self.tokens + "
                                                    "self.token_ratio)",
                                                    "self.tokens + self.token_ratio"),),
               "retry-backoff-jitter-ex2-answer": "max_attempts = 4\nbudget_ratio = None",
               "retry-backoff-jitter-ex3-answer": "expected = 1.24\nbottom_calls = 3 * 2\n"
                                                  "highest_load = 1 / 1.1"},
              {"retry-backoff-jitter-ex1-tests": "the tokens grew past max_tokens",
               "retry-backoff-jitter-ex2-tests": "below 0.9",
               "retry-backoff-jitter-ex3-tests": "the layers multiply, they do not add"},
              hides=("0.909",)),
        Wrong({"retry-backoff-jitter-ex1-answer": (("max(0.0, self.tokens - 1)",
                                                    "self.tokens - 1"),),
               "retry-backoff-jitter-ex3-answer": "expected = 1.24\nbottom_calls = 9\n"
                                                  "highest_load = 1 / 4"},
              {"retry-backoff-jitter-ex1-tests": "the bucket went below 0",
               "retry-backoff-jitter-ex3-tests": "the budget caps the attempts"},
              hides=("0.909",)),
    ],
    "resilience/timeouts": [
        Wrong({"timeouts-ex1-answer": (("left = self.remaining() - self.margin_s",
                                        "left = self.remaining()"),),
               "timeouts-ex2-answer": "timeout_s = 0.1\nretries = 0",
               "timeouts-ex3-answer": (("timeout_ms = 10 * math.log(1000)",
                                        "timeout_ms = 10 * math.log(100)"),)},
              {"timeouts-ex1-tests": "the margin was not kept back",
               "timeouts-ex2-tests": "the timeout cuts off too many healthy calls",
               "timeouts-ex3-tests": "that cuts off 1 % of calls"},
              hides=("69.0", "0.0488")),
        Wrong({"timeouts-ex1-answer": (("if left <= 0:", "if left < 0:"),),
               "timeouts-ex2-answer": "timeout_s = 0.1\nretries = 2",
               "timeouts-ex3-answer": (("request_failure = 1 - 0.999**50",
                                        "request_failure = 50 * 0.001"),)},
              {"timeouts-ex1-tests": "strict vs non-strict inequality",
               "timeouts-ex2-tests": "The lesson derives it in",
               "timeouts-ex3-tests": "the wrong formula: adding 50 probabilities"},
              hides=("69.0", "0.0488")),
    ],
    "specialized/id-generation": [
        Wrong({f"{(IDG := 'id-generation')}-ex1-answer": (
                   ('                ctx.set_timer((state["last_ms"] + 1) / 1000 - ctx.now, '
                    '"caught up")\n                return\n',
                    "                ctx.fail(self.held.pop(0))\n                continue\n"),),
               f"{IDG}-ex2-answer": "chosen_block_size = 100\nchosen_prefetch = 0.25",
               f"{IDG}-ex3-answer": "import math\nids_for_one_in_a_million = math.sqrt(2**64)\n"
                                    "ids_per_second_8_bit_sequence = 2**8 * 1000\n"
                                    "allocator_writes_per_second = 36_000 / 480"},
              {f"{IDG}-ex1-tests": "requests were refused",
               f"{IDG}-ex2-tests": "its load is λ/B",
               f"{IDG}-ex3-tests": "that is √(2^64)"},
              hides=("6.07e", "6,074", "256,000", "256000")),
        Wrong({f"{IDG}-ex1-answer": (
                   ('if now < state["last_ms"] or (now == state["last_ms"] and '
                    'state["sequence"] == 4095):',
                    'if now == state["last_ms"] and state["sequence"] == 4095:'),),
               f"{IDG}-ex2-answer": "chosen_block_size = 200\nchosen_prefetch = 0.0",
               f"{IDG}-ex3-answer": "import math\n"
                                    "ids_for_one_in_a_million = math.sqrt(2**65 * 1e-6)\n"
                                    "ids_per_second_8_bit_sequence = 255 * 1000\n"
                                    "allocator_writes_per_second = 36_000 / 480"},
              {f"{IDG}-ex1-tests": "A clock set back brings old milliseconds round again",
               f"{IDG}-ex2-tests": "ask for the next block early",
               f"{IDG}-ex3-tests": "255 is the largest sequence number"},
              hides=("6.07e", "6,074", "256,000", "256000")),
        Wrong({f"{IDG}-ex1-answer": (("snowflake(now, int(ctx.node_id[1:]), state",
                                      "snowflake(now, int(ctx.node_id[1:]) + 1, state"),),
               f"{IDG}-ex2-answer": "chosen_block_size = 300\nchosen_prefetch = 0.5",
               f"{IDG}-ex3-answer": "import math\n"
                                    "ids_for_one_in_a_million = math.sqrt(2**65 * 1e-6)\n"
                                    "ids_per_second_8_bit_sequence = 2**8 * 1000\n"
                                    "allocator_writes_per_second = 36_000 * 480"},
              {f"{IDG}-ex1-tests": "does not decode to worker",
               f"{IDG}-ex2-tests": "up to (1 + p)·B",
               f"{IDG}-ex3-tests": "that is λ·B"},
              hides=("6.07e", "6,074", "256,000", "256000")),
    ],
    "specialized/clock-sync-commit-wait": [
        Wrong({f"{(CSW := 'clock-sync-commit-wait')}-ex1-answer": (
                   ("TrueTime(epsilon, lambda: ctx.now)",
                    "TrueTime(self.max_skew_s, lambda: ctx.now)"),),
               f"{CSW}-ex2-answer": "chosen_epsilon_s = 0.08",
               f"{CSW}-ex3-answer": (("smallest_epsilon_ms = (11 + 19) / 2",
                                      "smallest_epsilon_ms = 19"),)},
              {f"{CSW}-ex1-tests": "an ε that does not grow with them is too small later",
               f"{CSW}-ex2-tests": "pays twice what ordering needs",
               f"{CSW}-ex3-tests": "that is the largest single offset"},
              hides=("0.08453", "12.8")),
        Wrong({f"{CSW}-ex1-answer": (("TrueTime(epsilon, lambda: ctx.now)",
                                      "TrueTime(0.08, lambda: ctx.now)"),),
               f"{CSW}-ex2-answer": "chosen_epsilon_s = 0.02",
               f"{CSW}-ex3-answer": (("(math.exp(-2 * 20 * 0.005) - math.exp(-20 * 0.05))",
                                      "(1 - math.exp(-20 * 0.05))"),)},
              {f"{CSW}-ex1-tests": "over the 140 ms budget",
               f"{CSW}-ex2-tests": "must cover the largest difference between two clocks",
               f"{CSW}-ex3-tests": "that leaves out the hold"},
              hides=("0.08453", "12.8")),
        Wrong({f"{CSW}-ex1-answer": "class DriftingCommitWait:\n    epsilon_s = 0.05",
               f"{CSW}-ex3-answer": (("hold_ms = 2 * (1 + 0.2 * 27)",
                                      "hold_ms = 1 + 0.2 * 27"),)},
              {f"{CSW}-ex1-tests": "must be a class that subclasses CommitWaitRegister",
               f"{CSW}-ex3-tests": "that is ε itself"},
              hides=("0.08453", "12.8")),
    ],
    "specialized/leases-distributed-locks": [
        Wrong({f"{(LDL := 'leases-distributed-locks')}-ex1-answer":
                   "class DurableLock(CarefulLeaseNode):\n    pass\n",
               f"{LDL}-ex2-answer": "chosen_term_s = 3.5\nchosen_renew_fraction = 1 / 3",
               f"{LDL}-ex3-answer": (("renewals_per_s = 600 / (15 / 3)",
                                      "renewals_per_s = 600 / 15"),)},
              {f"{LDL}-ex1-tests": "Tokens must keep growing across restarts",
               f"{LDL}-ex2-tests": "over the 250 budget",
               f"{LDL}-ex3-tests": "the renewal interval is L/3, not L"},
              hides=("17.323", "120.0")),
        Wrong({f"{LDL}-ex1-answer": (("self.quiet_until = ctx.now + wait if restarted else -1.0",
                                      "self.quiet_until = -1.0"),),
               f"{LDL}-ex2-answer": "chosen_term_s = 5.0\nchosen_renew_fraction = 0.5",
               f"{LDL}-ex3-answer": (("+ 2 + 2 * 0.010", "+ 2 * 0.010"),)},
              {f"{LDL}-ex1-tests": "must not grant while an older lease may still run",
               f"{LDL}-ex2-tests": "the term is too long for the target",
               f"{LDL}-ex3-tests": "the standby's polling interval is missing"},
              hides=("17.323", "120.0")),
        Wrong({f"{LDL}-ex2-answer": "chosen_term_s = 3.0\nchosen_renew_fraction = 0.2",
               f"{LDL}-ex3-answer": (("15 * 2 * 0.01", "15 * 0.01"),)},
              {f"{LDL}-ex2-tests": "over the 250 budget",
               f"{LDL}-ex3-tests": "the margin covers one clock only"},
              hides=("17.323", "120.0")),
    ],
    "specialized/leader-election": [
        Wrong({f"{(LE := 'leader-election')}-ex1-answer": (
                   ("                self.arm(ctx)\n        ctx.set_timer(self.check_every_s, "
                    "\"quorum\")", "                self.arm(ctx)"),),
               f"{LE}-ex2-answer": "chosen_timeout_min_s = 0.15\nchosen_timeout_max_s = 0.2",
               f"{LE}-ex3-answer": (("detection_ms = d - h / 2 + a + r / (m + 1)",
                                     "detection_ms = d + a + r / (m + 1)"),)},
              {f"{LE}-ex1-tests": "answers came from a deposed leader",
               f"{LE}-ex2-tests": "the range is too narrow for the 5 ms delay",
               f"{LE}-ex3-tests": "that leaves out the heartbeat phase"},
              hides=("104.28", "104.29", "0.01585", "0.0158")),
        Wrong({f"{LE}-ex1-answer": (
                   ("heard = sum(ctx.now - t <= window for t in election.last_ack.values())",
                    "heard = len(election.last_ack)"),),
               f"{LE}-ex2-answer": "chosen_timeout_min_s = 0.15\nchosen_timeout_max_s = 0.6",
               f"{LE}-ex3-answer": (("j = 7 - (7 // 2 + 1)", "j = 2"),)},
              {f"{LE}-ex1-tests": "answers came from a deposed leader",
               f"{LE}-ex2-tests": "the range is so wide that the first timer often fires late",
               f"{LE}-ex3-tests": "that counts one extra candidate as a split"},
              hides=("104.28", "104.29", "0.01585", "0.0158")),
        Wrong({f"{LE}-ex1-answer": (("if heard < majority(len(ctx.nodes)) - 1:",
                                     "if heard < majority(len(ctx.nodes)) + 1:"),),
               f"{LE}-ex2-answer": "chosen_timeout_min_s = 0.1\nchosen_timeout_max_s = 0.3",
               f"{LE}-ex3-answer": (("detection_ms = d - h / 2 + a + r / (m + 1)",
                                     "detection_ms = (d - h / 2 + a + r / (m + 1)) / 1000"),)},
              {f"{LE}-ex1-tests": "leaves the cluster leaderless",
               f"{LE}-ex2-tests": "is under 3 heartbeat intervals",
               f"{LE}-ex3-tests": "that is in seconds"},
              hides=("104.28", "104.29", "0.01585", "0.0158")),
    ],
    "specialized/consensus": [
        Wrong({f"{(CO := 'consensus')}-ex1-answer": (
                   (" and self.term_at(index) == self.term", ""),),
               f"{CO}-ex2-answer": "chosen_nodes = 3",
               f"{CO}-ex3-answer": (("commit_ms = 4 * (1 / 6 + 1 / 5 + 1 / 4)",
                                     "commit_ms = 4"),)},
              {f"{CO}-ex1-tests": "only through an entry of the leader's term",
               f"{CO}-ex2-tests": "tolerate more failures",
               f"{CO}-ex3-tests": "that is one average round trip"},
              hides=("2.4667", "2.467", "0.99884", "0.9988")),
        Wrong({f"{CO}-ex1-answer": (("index = stored[majority(len(self.peers) + 1) - 1]",
                                     "index = stored[0]"),),
               f"{CO}-ex2-answer": "chosen_nodes = 7",
               f"{CO}-ex3-answer": (("commit_ms = 4 * (1 / 6 + 1 / 5 + 1 / 4)",
                                     "commit_ms = 4 * (1 / 6 + 1 / 5 + 1 / 4 + 1 / 3)"),)},
              {f"{CO}-ex1-tests": "commit only what a majority stores",
               f"{CO}-ex2-tests": "that wait grows with n",
               f"{CO}-ex3-tests": "the leader's own copy counts toward the majority"},
              hides=("2.4667", "2.467", "0.99884", "0.9988")),
        Wrong({f"{CO}-ex1-answer": (("stored = sorted([len(self.log), *self.match_index.values()]"
                                     ", reverse=True)",
                                     "stored = sorted(self.match_index.values(), reverse=True)"),),
               f"{CO}-ex2-answer": "chosen_nodes = 4",
               f"{CO}-ex3-answer": (("available_5 = sum(comb(5, k) * 0.95**k * 0.05 ** (5 - k) "
                                     "for k in range(3, 6))", "available_5 = 0.95**3"),)},
              {f"{CO}-ex1-tests": "an entry of the leader's term on a majority commits",
               f"{CO}-ex2-tests": "an even size tolerates no more failures",
               f"{CO}-ex3-tests": "that is all of three chosen nodes up"},
              hides=("2.4667", "2.467", "0.99884", "0.9988")),
    ],
}

ROUNDS = [(lesson, number) for lesson, rounds in WRONG.items()
          for number in range(len(rounds))]


def submission(solution_md: Path, wrong: Wrong, folder: Path) -> Path:
    """The solutions notebook as a learner would hand it in, with the wrong answers in it."""
    nb = read_markdown(solution_md)
    for cell in nb.cells:
        if not release.is_answer(cell):
            continue
        solved = "\n".join(line for line in cell.source.split("\n")
                           if not any(marker in line for marker in release.MARKERS))
        edit = wrong.answers.get(release.nbgrader_of(cell)["grade_id"], ())
        if isinstance(edit, str):
            solved = edit
        for old, new in edit if isinstance(edit, tuple) else ():
            assert old in solved, f"{old!r} is not in the solution of this answer cell"
            solved = solved.replace(old, new)
        cell.source = solved
    path = folder / solution_md.with_suffix(".ipynb").name
    path.write_text(ipynb_text(nb), encoding="utf-8")
    return path


@pytest.mark.parametrize(("lesson", "number"), ROUNDS,
                         ids=[f"{lesson}-{number + 1}" for lesson, number in ROUNDS])
def test_a_wrong_answer_gets_the_message_that_names_its_mistake(lesson, number, tmp_path):
    wrong = WRONG[lesson][number]
    solution_md = paths.SOLUTIONS / f"{lesson}.md"
    report = grader.grade(submission(solution_md, wrong, tmp_path), solution=solution_md)
    results = {result.exercise: result for result in report.exercises}
    assert {name: (r.status, r.message) for name, r in results.items()
            if r.status != "passed"}.keys() == wrong.says.keys()
    for name, text in wrong.says.items():
        assert results[name].status == "failed" and text in results[name].message, (
            f"{name}: {results[name].message}")
        assert "The lesson derives it in" in results[name].message
    for hidden in wrong.hides:
        assert not [r.message for r in results.values() if hidden in r.message], hidden
