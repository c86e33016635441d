import sys
from pathlib import Path

# tests import small shared helpers (e.g. `optimus_tiny`) as top-level modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
