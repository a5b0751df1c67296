// First, on its own: sizes libuv's thread pool before anything uses it.
import './threadpool.js';

import { main } from './main.js';

await main('simplectl');
