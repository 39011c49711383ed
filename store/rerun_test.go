package store

import "os"

func init() { rerunAllForTesting = os.Getenv("MLNODE_TEST_RERUN_WRITES") == "1" }
