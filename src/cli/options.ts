// Options shared by commands, so that every command spells them the same way.
import { Option, type Command } from 'commander';

export interface ConfigOptions {
  config?: string;
}

export interface JsonOptions {
  json?: boolean;
}

export function addConfigOption(cmd: Command): Command {
  return cmd.addOption(
    new Option('-c, --config <file>', 'config file (default: ./iscsi-target.yaml)'),
  );
}

export function addJsonOption(cmd: Command): Command {
  return cmd.addOption(new Option('--json', 'machine-readable output (JSON on stdout)'));
}
