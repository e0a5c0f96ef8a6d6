import { z } from 'zod';

/** The log protocol's `options`. */
export const logOptionsSchema = z
  .strictObject({
    /** Where the lines go. */
    stream: z.enum(['stdout', 'stderr']).default('stdout'),
  })
  .prefault({});
