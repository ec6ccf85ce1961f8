"""cpubot: how hot is this EC2 instance, and one SMS when it runs hot."""
