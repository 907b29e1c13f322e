"""Import the plugin from this source tree (a third party would ``pip install -e .``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
