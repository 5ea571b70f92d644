"""What the asset definitions in `cloud_assets/defs/` are built with, and nothing of their own: the
per-image assets' shards and backfill policies (`sharding`), input checks run inside an asset
(`checks`), metadata tables and progress lines (`metadata`), and where the GPU steps run (`gpu`)."""
