// Integration tests start JVMs and whole AppHosts on a 2-core machine: run one collection at a time so they
// don't starve each other into time-outs.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
