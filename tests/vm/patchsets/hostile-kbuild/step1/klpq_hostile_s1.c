// SPDX-License-Identifier: GPL-2.0
/* Never built: the Kbuild beside it stops the build (tests/vm: hostile-kbuild). */
#include <linux/module.h>
MODULE_LICENSE("GPL");
