#!/bin/sh
# embed.sh NAME FILE: FILE as a C array NAME and its length NAME_len (od is
# in coreutils: no xxd needed)
name=$1; file=$2
printf '/* generated from %s by embed.sh: do not edit */\n#include <stddef.h>\nconst unsigned char %s[] = {\n' "$file" "$name"
od -An -v -tx1 "$file" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g; s/^/\t/'
printf '};\nconst size_t %s_len = sizeof(%s);\n' "$name" "$name"
