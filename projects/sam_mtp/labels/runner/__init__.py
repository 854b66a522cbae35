"""What the two label pipelines share to run over many machines: shard assignment (``sharding``), the output
settings and their fingerprints (``output_dir``), the sharded, resumable job runner with its merge lock
(``jobs``) and the command-line helpers of the tools (``cli``)."""
