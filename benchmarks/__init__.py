"""Benchmarks of ``nst_utils`` against a naive tutorial-style reference (``python -m benchmarks``).

Not part of the test suite's timings: a parent process launches one child process per
(implementation, size, precision), so that each child's peak RSS is its own high-water mark,
collects the JSON each child prints, and writes a markdown table (``benchmarks/results.md``).

Modules: :mod:`.child` (one measured run), :mod:`.naive` (the reference written the way the
popular PyTorch tutorial writes it), :mod:`.flops` (the analytic FLOP floor and this machine's
throughput), :mod:`.machine` (where the numbers came from), :mod:`.report` (the table) and
:mod:`.memory_calibration` (peak RSS of real ``nst.transfer`` runs for ``nst_utils.engine.memory``);
:mod:`.startup` times the command line's answers that need no run (help, a missing file).
"""
