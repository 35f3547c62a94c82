"""FPGA resource, clock, latency and energy estimates, the hls4ml ANN baseline, reports.

Modules
-------
``tools``     finding yosys / nextpnr (YoWASP) and running them with a content-hash cache
``parts``     targets, the part capacity table and the fits / does-not-fit check
``synth``     yosys synthesis per target: resources, per-component breakdown, logic depth
``pnr``       nextpnr place and route (ECP5, iCE40) and the Fmax it reports
``energy``    synaptic operations from real spikes, compute energy, sparsity
``accel``     the accelerator as a pluggable RTL source and cycle model
``pipeline``  the estimate of one configuration (``dietsnn estimate``)
``sweep``     the lanes sweep and its Pareto front (``dietsnn sweep``)
``report``    report.json / report.md / PNG plots and the short table
``baseline``  the ANN baseline with hls4ml (``dietsnn baseline``)

See ``docs/estimate.md``.
"""
