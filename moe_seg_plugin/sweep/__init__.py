"""Design-analysis sweeps: ablation families expanded into runs, run
through MMEngine's Runner on a local or Slurm executor, and turned into the
paper's kind of tables."""
