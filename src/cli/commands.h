/* CLI commands: argument parsing and terminal output only; the work is
 * done by the engine (src/repo) and the jobs (src/job). */
#ifndef SM_CLI_COMMANDS_H
#define SM_CLI_COMMANDS_H

int cmd_repo(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_project(int argc, char **argv);
int cmd_org(int argc, char **argv);
int cmd_member(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_notify(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_pitr(int argc, char **argv);
int cmd_pitr_restore(int argc, char **argv);
int cmd_wal_push(int argc, char **argv);
int cmd_wal_fetch(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_repo_copy(int argc, char **argv);

#endif
