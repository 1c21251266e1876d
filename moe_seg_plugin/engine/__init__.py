"""MMEngine glue: run set-up shared by the tools, and hooks."""
from .checkpoint_fit import CheckpointFitHook
from .errors import SetupError, as_setup_error
from .grid_check_hook import GridCheckHook
from .progress import ProgressHook
from .progress_file import ProgressFileHook
from .random_state_hook import RandomStateHook
from .routing_stats_hook import RoutingStatsHook
from .run_setup import (check_data_roots, clear_errors, cpu_distributed,
                        enable_amp, load_config, resume_seed, run_cli,
                        runner_from_cfg, set_work_dir, test_config, use_tta)

__all__ = [
    'load_config', 'resume_seed', 'check_data_roots', 'cpu_distributed',
    'enable_amp',
    'set_work_dir', 'test_config', 'use_tta', 'ProgressHook',
    'ProgressFileHook',
    'RoutingStatsHook', 'GridCheckHook', 'CheckpointFitHook',
    'RandomStateHook', 'run_cli',
    'runner_from_cfg', 'clear_errors', 'SetupError', 'as_setup_error'
]
