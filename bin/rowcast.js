#!/usr/bin/env node
import '../dist/app/cli/main.js';
