// Set-up file of the integration project: these tests make links, namespaces, etcd members and daemons freely and
// clean up by name, which only the private namespaces of test/in-netns.sh may see. It runs before a test file
// registers any hook, so a file started elsewhere fails at once and touches nothing.
import { assertPrivateNetns } from '../helpers/net';

assertPrivateNetns();
