"""The workspace's asset library: images for visual posts, uploaded or generated (`shared.assets.library`)."""
