/**
 * Help texts of options several simplectl commands share, so that each
 * command says the same thing about them.
 */
import { VIRTUAL_DEVICE_GLOBS } from '../../core/names.js';

const VIRTUAL = VIRTUAL_DEVICE_GLOBS.map((g) => g.replace(/[-*]+$/, '')).join(', ');

/** `--include <glob...>`: the devices a command may look at (and, for mount, touch). */
export const INCLUDE_HELP =
  'consider exactly the devices whose kernel names match these globs, loop devices included (e.g. "loop*", sdb); ' +
  `default: every whole disk except ${VIRTUAL}`;

/** `--state-dir <dir>`: where volume assignments are kept. */
export const STATE_DIR_HELP = 'volume state directory (default: $SIMPLECTL_STATE_DIR or /var/lib/simplectl)';
