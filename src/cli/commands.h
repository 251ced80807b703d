/* CLI commands: argument parsing and terminal output only; the work is
 * done by the engine (src/repo) and the jobs (src/job). */
#ifndef SM_CLI_COMMANDS_H
#define SM_CLI_COMMANDS_H

int cmd_repo(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
