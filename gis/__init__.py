"""Where things are and how they connect: network tables, topology, locating, roads, import/export."""

import pandas as _pd

# pandas 3 stores text in pyarrow when pyarrow is installed (it is: pyogrio reads GeoPackages through Arrow) and in
# Python objects otherwise. Pin one so behaviour and speed do not depend on what happens to be installed: Python
# storage keeps hash lookups (isin, dict-style maps) fast, which the topology and validation lean on.
_pd.set_option("mode.string_storage", "python")
