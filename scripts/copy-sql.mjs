// tsc does not copy non-TypeScript files: the migrations ship beside the compiled migrator.
import { cpSync } from 'node:fs';
cpSync('src/store/migrations', 'dist/store/migrations', { recursive: true });
// The dashboard's HTML, modules and stylesheet are served from beside the compiled dashboard routes.
cpSync('src/app/http/dashboard/public', 'dist/app/http/dashboard/public', { recursive: true });
// The Python runtime's bootstrap is run by python3 from beside the compiled runtime process pool.
cpSync('src/functions/runtimes/python', 'dist/functions/runtimes/python', { recursive: true });
