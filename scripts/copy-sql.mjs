// tsc does not copy non-TypeScript files: the migrations ship beside the compiled migrator.
import { cpSync } from 'node:fs';
cpSync('src/store/migrations', 'dist/store/migrations', { recursive: true });
