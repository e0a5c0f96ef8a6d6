#!/usr/bin/env node
import '../dist/control-plane/cli/main.js';
